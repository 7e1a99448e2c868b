"""UMN (base model) training node: backbone + static head on all users' train rows."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.training.loop import TrainingConfig
from duet_pipeline.training.models import CloudData, train_base
from duet_pipeline.training.streaming import StreamedSamples
from duet_pipeline.training.tensors import to_compact, to_tensors
from duet_pipeline.training.tracking import metric_history


def cloud_data(train_samples: pd.DataFrame | list[str], validation_samples: pd.DataFrame, item_index: pd.DataFrame,
               backbone: str, model: dict[str, Any], backbones: dict[str, Any], training: dict[str, Any]) -> CloudData:
    """What every cloud training reads, from the catalog's datasets and parameters.
    ``train_samples``: the rows, or (training.streaming) their parquet files."""
    if isinstance(train_samples, list):  # streamed: validation stays compact too
        train, validation = StreamedSamples.open(train_samples), to_compact(validation_samples)
    else:
        train, validation = to_tensors(train_samples), to_tensors(validation_samples)
    return CloudData(train, validation, int(item_index["item_index"].max()),
                     backbone, model, backbones, TrainingConfig.from_params(training))


def train_base_model(
    train_samples: pd.DataFrame | list[str], validation_samples: pd.DataFrame, item_index: pd.DataFrame,
    backbone: str, model: dict[str, Any], backbones: dict[str, Any], training: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train the base model; returns its bundle, per-epoch history and MLflow metric history."""
    result = train_base(cloud_data(train_samples, validation_samples, item_index, backbone, model, backbones, training))
    return result.bundle, result.history, metric_history(result.history)
