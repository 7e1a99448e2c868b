"""PPG training node: backbone + parameter generator (+ SWA) trained jointly."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from duet_pipeline.models.recommender import ModelConfig, Recommender, model_bundle
from duet_pipeline.models.variants import duet_config, duet_variant_name, warm_start_from_base
from duet_pipeline.training.loop import TrainingConfig, fit
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import metric_history

logger = logging.getLogger(__name__)


def train_duet_model(
    train_samples: pd.DataFrame,
    validation_samples: pd.DataFrame,
    base_model: dict[str, Any],
    ppg: dict[str, Any],
    training: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train DUET on all users' train rows; optionally start from the base model."""
    config = TrainingConfig.from_params(training)
    train, validation = to_tensors(train_samples), to_tensors(validation_samples)
    torch.manual_seed(config.seed)
    model = Recommender(duet_config(ModelConfig(**base_model["config"]), ppg))
    if ppg["warm_start"]:
        copied = warm_start_from_base(model, base_model["state_dict"])
        logger.info("DUET warm start: %d tensors from the base model", len(copied))
    name = duet_variant_name(ppg)
    result = fit(model, train, validation, config, description=f"{name}/{model.config.backbone}")
    bundle = model_bundle(model, name, {"best_epoch": result.best_epoch, "ppg": dict(ppg)})
    return bundle, result.history, metric_history(result.history)
