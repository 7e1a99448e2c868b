"""Training with validation-based epoch selection and early stopping (PROTOCOL section 4)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator
from torch import nn
from tqdm import tqdm

from duet_pipeline.console import progress
from duet_pipeline.evaluation.metrics import compute_metrics, is_improvement, metric_names
from duet_pipeline.parameters import Block, parse_block

from .cores import CoreShare
from .tensors import SampleTensors

# Batches between two checks of the cores' share (a directory listing, ~50 us).
SHARE_CHECK_BATCHES = 32

# A batch's training loss: (logits, the batch's rows, their row numbers in the table).
RowLoss = Callable[[torch.Tensor, SampleTensors, torch.Tensor], torch.Tensor]


def label_loss(logits: torch.Tensor, batch: SampleTensors, rows: torch.Tensor) -> torch.Tensor:
    """Every cloud training's loss unless it says otherwise: mean binary cross-entropy."""
    return nn.functional.binary_cross_entropy_with_logits(logits, batch.label)


class TrainingConfig(Block):
    """The ``training`` parameters (PROTOCOL section 4), checked on entry; their
    values live in conf/base/parameters_umn_training.yml."""

    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)  # stop after this many epochs without improvement
    seed: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    eval_batch_size: int = Field(ge=1)
    selection_metric: str  # any declared metric; its direction decides "better"
    # "groups": shuffle whole groups of rows sharing a user and history (a positive and
    # its negatives), so a batch holds each history ~5 times and the model computes
    # history-only parts once per group; "rows": shuffle single rows.
    shuffle: Literal["groups", "rows"]
    progress: bool

    @field_validator("selection_metric")
    @classmethod
    def _declared_metric(cls, name: str) -> str:
        if name not in metric_names():
            raise ValueError(f"must be a declared metric, one of {metric_names()}")
        return name

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainingConfig":
        return parse_block(cls, params, "training")


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    history: pd.DataFrame = field(repr=False)


@torch.inference_mode()
def predict(model: nn.Module, data: SampleTensors, batch_size: int = 16384) -> np.ndarray:
    """Logits for every row of ``data``, in row order."""
    model.eval()
    out = [
        model(data.history[start : start + batch_size], data.target[start : start + batch_size])
        for start in range(0, len(data), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def evaluate(model: nn.Module, data: SampleTensors, batch_size: int = 16384) -> dict[str, float]:
    scores = predict(model, data, batch_size)
    return compute_metrics(data.user.numpy(), data.label.numpy(), scores)


def history_groups(data: SampleTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, length) of each run of consecutive rows with the same user and history."""
    changed = torch.ones(len(data), dtype=torch.bool)
    changed[1:] = (data.user[1:] != data.user[:-1]) | (data.history[1:] != data.history[:-1]).any(dim=1)
    starts = torch.nonzero(changed).squeeze(1)
    lengths = torch.diff(starts, append=torch.tensor([len(data)]))
    return starts, lengths


def shuffled_order(groups: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """Row order with the groups in random order and each group's rows kept together."""
    starts, lengths = groups
    permutation = torch.randperm(len(starts), generator=generator)
    starts, lengths = starts[permutation], lengths[permutation]
    offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return torch.repeat_interleave(starts, lengths) + offsets


def make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """Adam over every parameter, as every cloud training uses it (and the step benchmark).

    ``fused=True``: one kernel for all parameters instead of ~10 small kernels per
    parameter tensor; 3x faster per optimiser step and 5-12% per DUET training step on
    the 2-core machine (docs/benchmarks.md). It equals the per-tensor loop to float
    rounding (tests/training/test_fast_step.py)."""
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                            fused=True)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: SampleTensors,
    batch_size: int,
    order: torch.Tensor,
    bar: tqdm | None = None,
    cores: CoreShare | None = None,
    loss_fn: RowLoss = label_loss,
) -> float:
    """One pass over ``train`` in ``order``; returns the mean training loss per row.
    ``cores``: re-check this process's share of the cores every few batches."""
    model.train()
    total, rows = 0.0, 0
    for number, start in enumerate(range(0, len(train), batch_size)):
        if cores is not None and number % SHARE_CHECK_BATCHES == 0:
            cores.adjust()
        index = order[start : start + batch_size]
        batch = train.rows(index)
        loss = loss_fn(model(batch.history, batch.target), batch, index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        rows += len(batch)
        if bar is not None:
            bar.update(len(batch))
            bar.set_postfix(loss=f"{total / rows:.4f}", refresh=False)
    return total / max(rows, 1)


def fit(
    model: nn.Module,
    train: SampleTensors,
    validation: SampleTensors,
    config: TrainingConfig,
    description: str = "train",
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    loss_fn: RowLoss = label_loss,
) -> FitResult:
    """Train ``model`` and return the state of the epoch with the best validation
    ``config.selection_metric`` (highest, or lowest for a lower-is-better metric).

    ``on_epoch_end`` receives each epoch's history row (e.g. to report progress from a
    worker process, where a progress bar cannot be shown). ``loss_fn``: the training
    loss (default: binary cross-entropy with the labels; MoMoDistill adds a KL term).

    Stops after ``patience`` epochs without improvement. The returned history has one
    row per epoch: train loss, every validation metric, seconds and rows per second.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    groups = history_groups(train) if config.shuffle == "groups" else (
        torch.arange(len(train)), torch.ones(len(train), dtype=torch.long))
    best_value, best_epoch, best_state, stale = None, 0, None, 0
    records = []
    with CoreShare() as cores:
        for epoch in range(1, config.max_epochs + 1):
            record = _fit_epoch(model, optimizer, train, validation, config, groups, generator, cores,
                                f"{description} epoch {epoch}/{config.max_epochs}", loss_fn)
            records.append({"epoch": epoch, **record})
            if on_epoch_end is not None:
                on_epoch_end(records[-1])
            value = record[f"val_{config.selection_metric}"]
            if is_improvement(config.selection_metric, value, best_value):
                best_value, best_epoch, stale = value, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= config.patience:
                    break
    model.load_state_dict(best_state)
    return FitResult(best_state=best_state, best_epoch=best_epoch, history=pd.DataFrame(records))


def _fit_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, train: SampleTensors, validation: SampleTensors,
               config: TrainingConfig, groups: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator,
               cores: CoreShare, description: str, loss_fn: RowLoss) -> dict[str, float]:
    """One epoch of training and its validation: the epoch's history row (without ``epoch``)."""
    bar = progress(total=len(train), enabled=config.progress, desc=description, unit="row", unit_scale=True, leave=True)
    started = time.perf_counter()
    order = shuffled_order(groups, generator)
    train_loss = train_epoch(model, optimizer, train, config.batch_size, order, bar, cores, loss_fn)
    train_seconds = time.perf_counter() - started
    metrics = evaluate(model, validation, config.eval_batch_size)
    bar.set_postfix(loss=f"{train_loss:.4f}", val_auc=f"{metrics['auc']:.4f}")
    bar.close()
    return {"train_loss": train_loss, "train_seconds": train_seconds,
            "train_rows_per_second": len(train) / train_seconds,
            **{f"val_{name}": value for name, value in metrics.items()}}

