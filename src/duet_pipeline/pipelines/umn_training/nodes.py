"""UMN (base model) training node: backbone + static head on all users' train rows."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.models.recommender import model_bundle
from duet_pipeline.training.loop import TrainingConfig
from duet_pipeline.training.models import train_base
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import metric_history


def train_base_model(
    train_samples: pd.DataFrame,
    validation_samples: pd.DataFrame,
    item_index: pd.DataFrame,
    backbone: str,
    model: dict[str, Any],
    training: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train the base model; returns its bundle, per-epoch history and MLflow metric history."""
    recommender, result = train_base(
        to_tensors(train_samples), to_tensors(validation_samples), int(item_index["item_index"].max()),
        backbone, model, TrainingConfig.from_params(training),
    )
    bundle = model_bundle(recommender, "base", {"best_epoch": result.best_epoch})
    return bundle, result.history, metric_history(result.history)
