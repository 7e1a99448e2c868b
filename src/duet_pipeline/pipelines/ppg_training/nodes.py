"""PPG training node: backbone + parameter generator (+ SWA) trained jointly."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.models.recommender import model_bundle
from duet_pipeline.models.variants import duet_variant_name
from duet_pipeline.training.loop import TrainingConfig
from duet_pipeline.training.models import train_duet
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import metric_history


def train_duet_model(
    train_samples: pd.DataFrame,
    validation_samples: pd.DataFrame,
    base_model: dict[str, Any],
    ppg: dict[str, Any],
    training: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train DUET on all users' train rows; optionally start from the base model."""
    model, result = train_duet(
        to_tensors(train_samples), to_tensors(validation_samples), base_model, ppg,
        TrainingConfig.from_params(training),
    )
    bundle = model_bundle(model, duet_variant_name(ppg), {"best_epoch": result.best_epoch, "ppg": dict(ppg)})
    return bundle, result.history, metric_history(result.history)
