"""Training the two kinds of model from parameters: the base (UMN) and DUET.

The Kedro nodes and the experiment grid both call these, so a grid cell trains exactly
what `kedro run` trains.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from duet_pipeline.models.recommender import ModelConfig, Recommender
from duet_pipeline.models.variants import base_model_config, duet_config, duet_variant_name, warm_start_from_base

from .loop import FitResult, TrainingConfig, fit
from .tensors import SampleTensors

logger = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float]], None]


def train_base(
    train: SampleTensors, validation: SampleTensors, num_items: int, backbone: str,
    model: dict[str, Any], config: TrainingConfig, on_epoch_end: EpochCallback | None = None,
) -> tuple[Recommender, FitResult]:
    """Backbone + static head on every user's train rows; the model holds the kept epoch."""
    if len(train) == 0:
        raise ValueError(
            "train_samples is empty: every user has at most 3 interactions, so leave-one-out "
            "leaves nothing to train on; lower features.min_user_interactions or use more data"
        )
    torch.manual_seed(config.seed)
    recommender = Recommender(base_model_config(num_items, train.history.shape[1], backbone, model))
    result = fit(recommender, train, validation, config, description=f"base/{backbone}", on_epoch_end=on_epoch_end)
    logger.info(
        "base/%s: best epoch %d, validation AUC %.4f",
        backbone, result.best_epoch, result.history["val_auc"].iloc[result.best_epoch - 1],
    )
    return recommender, result


def train_duet(
    train: SampleTensors, validation: SampleTensors, base_model: dict[str, Any],
    ppg: dict[str, Any], config: TrainingConfig, on_epoch_end: EpochCallback | None = None,
) -> tuple[Recommender, FitResult]:
    """Backbone + parameter generator trained jointly; optionally warm-started from the base."""
    torch.manual_seed(config.seed)
    model = Recommender(duet_config(ModelConfig(**base_model["config"]), ppg))
    if ppg["warm_start"]:
        copied = warm_start_from_base(model, base_model["state_dict"])
        logger.info("DUET warm start: %d tensors from the base model", len(copied))
    name = duet_variant_name(ppg)
    result = fit(model, train, validation, config, description=f"{name}/{model.config.backbone}",
                 on_epoch_end=on_epoch_end)
    logger.info(
        "%s/%s: best epoch %d, validation AUC %.4f", name, model.config.backbone,
        result.best_epoch, result.history["val_auc"].iloc[result.best_epoch - 1],
    )
    return model, result
