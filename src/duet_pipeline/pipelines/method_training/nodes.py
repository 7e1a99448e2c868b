"""Cloud training of a method with its own recipe (DUET: backbone + PPG + SWA jointly)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.methods import get_method
from duet_pipeline.training.tracking import metric_history

from ..umn_training.nodes import cloud_data


def train_method_model(
    method: str, train_samples: pd.DataFrame, validation_samples: pd.DataFrame, item_index: pd.DataFrame,
    backbone: str, model: dict[str, Any], backbones: dict[str, Any], training: dict[str, Any],
    options: dict[str, Any] | None = None, base_model: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train ``method``'s cloud model; ``base_model`` only where the method starts from it."""
    chosen = get_method(method)
    data = cloud_data(train_samples, validation_samples, item_index, backbone, model, backbones, training)
    result = chosen.train_cloud_model(data, chosen.parse_options(options), base_model)
    return result.bundle, result.history, metric_history(result.history)
