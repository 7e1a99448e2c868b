"""Training the shared base model (UMN) from parameters.

The Kedro node and the experiment grid both call :func:`train_base`, so a grid cell
trains exactly what `kedro run` trains. Methods with their own cloud recipe (DUET)
train in their own module.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
import torch

from duet_pipeline.models.recommender import Recommender, base_model_config, model_bundle

from .loop import FitResult, TrainingConfig, TrainSource, fit
from duet_pipeline.samples import SampleTensors

from .tensors import CompactSamples

logger = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class CloudData:
    """What a cloud training reads: the samples and the shared model parameters."""

    train: TrainSource  # rows in memory, or streamed from their files (base model only)
    validation: SampleTensors | CompactSamples  # compact beside a streamed train source
    num_items: int
    backbone: str
    model: dict[str, Any]  # params:model
    backbones: dict[str, Any]  # params:backbones
    training: TrainingConfig


@dataclass
class Trained:
    """A cloud training's result: the model bundle and its per-epoch history."""

    bundle: dict[str, Any]
    history: pd.DataFrame  # one row per epoch: train_loss, val_<metric>, train_seconds, ...
    best_epoch: int


def trained(bundle: dict[str, Any], result: FitResult) -> Trained:
    return Trained(bundle, result.history, result.best_epoch)


def train_base(data: CloudData, on_epoch_end: EpochCallback | None = None) -> Trained:
    """Backbone + static head on every user's train rows; the bundle holds the kept epoch."""
    if len(data.train) == 0:
        raise ValueError(
            "train_samples is empty: every user has at most 3 interactions, so leave-one-out "
            "leaves nothing to train on; lower features.min_user_interactions or use more data"
        )
    torch.manual_seed(data.training.seed)
    config = base_model_config(data.num_items, data.validation.history.shape[1], data.backbone, data.model, data.backbones)
    recommender = Recommender(config)
    result = fit(recommender, data.train, data.validation, data.training, description=f"base/{data.backbone}",
                 on_epoch_end=on_epoch_end)
    logger.info("base/%s: best epoch %d, validation %s %.4f", data.backbone, result.best_epoch,
                data.training.selection_metric,
                result.history[f"val_{data.training.selection_metric}"].iloc[result.best_epoch - 1])
    return trained(model_bundle(recommender, "base", {"best_epoch": result.best_epoch}), result)
