"""UMN (base model) training node: backbone + static head on all users' train rows."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from duet_pipeline.models.recommender import ModelConfig, Recommender, model_bundle
from duet_pipeline.training.loop import TrainingConfig, fit
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import metric_history

logger = logging.getLogger(__name__)


def model_config(item_index: pd.DataFrame, max_seq_len: int, backbone: str, model: dict[str, Any]) -> ModelConfig:
    """Model sizes from parameters, item count and window length from the data."""
    options = model.get("backbone_options", {}).get(backbone, {})
    return ModelConfig(
        num_items=int(item_index["item_index"].max()),
        max_seq_len=max_seq_len,
        backbone=backbone,
        dim=int(model["dim"]),
        backbone_options=dict(options),
    )


def train_base_model(
    train_samples: pd.DataFrame,
    validation_samples: pd.DataFrame,
    item_index: pd.DataFrame,
    backbone: str,
    model: dict[str, Any],
    training: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train the base model; returns its bundle, per-epoch history and MLflow metric history."""
    config = TrainingConfig.from_params(training)
    if train_samples.empty:
        raise ValueError(
            "train_samples is empty: every user has at most 3 interactions, so leave-one-out "
            "leaves nothing to train on; lower features.min_user_interactions or use more data"
        )
    train, validation = to_tensors(train_samples), to_tensors(validation_samples)
    torch.manual_seed(config.seed)
    recommender = Recommender(model_config(item_index, train.history.shape[1], backbone, model))
    result = fit(recommender, train, validation, config, description=f"base/{backbone}")
    logger.info(
        "base/%s: best epoch %d, validation AUC %.4f",
        backbone, result.best_epoch, result.history["val_auc"].iloc[result.best_epoch - 1],
    )
    bundle = model_bundle(recommender, "base", {"best_epoch": result.best_epoch})
    return bundle, result.history, metric_history(result.history)
