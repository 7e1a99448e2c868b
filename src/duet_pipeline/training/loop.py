"""Training with validation-based epoch selection and early stopping (PROTOCOL section 4)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from duet_pipeline.evaluation.metrics import compute_metrics

from .tensors import SampleTensors


@dataclass
class TrainingConfig:
    learning_rate: float = 1e-3
    batch_size: int = 1024
    max_epochs: int = 20
    patience: int = 3
    seed: int = 0
    weight_decay: float = 0.0
    eval_batch_size: int = 16384
    selection_metric: str = "auc"
    progress: bool = True

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainingConfig":
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown training parameters {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**params)


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


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: SampleTensors,
    batch_size: int,
    generator: torch.Generator,
    progress: tqdm | None = None,
) -> float:
    """One pass over shuffled ``train``; returns the mean training loss per row."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    order = torch.randperm(len(train), generator=generator)
    total, rows = 0.0, 0
    for start in range(0, len(train), batch_size):
        batch = train.rows(order[start : start + batch_size])
        loss = loss_fn(model(batch.history, batch.target), batch.label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        rows += len(batch)
        if progress is not None:
            progress.update(len(batch))
            progress.set_postfix(loss=f"{total / rows:.4f}", refresh=False)
    return total / max(rows, 1)


def fit(
    model: nn.Module,
    train: SampleTensors,
    validation: SampleTensors,
    config: TrainingConfig,
    description: str = "train",
) -> FitResult:
    """Train ``model`` and return the state of the epoch with the best validation metric.

    Stops after ``patience`` epochs without improvement. The returned history has one
    row per epoch: train loss, every validation metric, seconds and rows per second.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best_value, best_epoch, best_state, stale = -np.inf, 0, None, 0
    records = []
    for epoch in range(1, config.max_epochs + 1):
        bar = tqdm(
            total=len(train), desc=f"{description} epoch {epoch}/{config.max_epochs}",
            unit="row", unit_scale=True, disable=not config.progress, leave=True,
        )
        started = time.perf_counter()
        train_loss = train_epoch(model, optimizer, train, config.batch_size, generator, bar)
        train_seconds = time.perf_counter() - started
        metrics = evaluate(model, validation, config.eval_batch_size)
        bar.set_postfix(loss=f"{train_loss:.4f}", val_auc=f"{metrics['auc']:.4f}")
        bar.close()
        records.append(
            {"epoch": epoch, "train_loss": train_loss, "train_seconds": train_seconds,
             "train_rows_per_second": len(train) / train_seconds,
             **{f"val_{name}": value for name, value in metrics.items()}}
        )
        value = metrics[config.selection_metric]
        if value > best_value:
            best_value, best_epoch, stale = value, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    return FitResult(best_state=best_state, best_epoch=best_epoch, history=pd.DataFrame(records))
