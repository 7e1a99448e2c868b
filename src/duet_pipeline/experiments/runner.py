"""Running one unit of a grid: train its model, personalise every device, score each cell."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from duet_pipeline.evaluation.reporting import metrics_table, predictions_frame
from duet_pipeline.methods import Devices, get_method
from duet_pipeline.models.recommender import model_bundle
from duet_pipeline.models.variants import base_model_config
from duet_pipeline.training.loop import FitResult, TrainingConfig
from duet_pipeline.training.models import EpochCallback, train_base, train_duet
from duet_pipeline.training.tensors import SampleTensors, to_tensors

from .grid import DUET_VARIANTS, Cell, Unit


@dataclass
class GridData:
    """The samples every unit of one dataset reads, converted to tensors once."""

    train: SampleTensors
    validation: SampleTensors
    test: SampleTensors
    test_samples: pd.DataFrame  # for the predictions' (user, target, label) columns
    num_items: int

    @classmethod
    def from_frames(cls, train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, num_items: int) -> "GridData":
        return cls(to_tensors(train), to_tensors(validation), to_tensors(test), test, num_items)


@dataclass
class CellResult:
    cell: Cell
    config_hash: str
    metrics: dict[str, float]  # test metrics (PROTOCOL section 5)
    training: dict[str, float]  # of the model the cell uses (finetune: the base model)
    personalization: dict[str, float]  # the method's per-device cost report
    params: dict[str, Any] = field(repr=False)
    history: pd.DataFrame = field(repr=False)  # per-epoch training/validation curve
    predictions: pd.DataFrame = field(repr=False)
    wall_seconds: float = 0.0


def training_summary(result: FitResult) -> dict[str, float]:
    history = result.history
    return {
        "best_epoch": float(result.best_epoch),
        "epochs": float(len(history)),
        "seconds_per_epoch": float(history["train_seconds"].mean()),
        "train_rows_per_second": float(history["train_rows_per_second"].mean()),
        "best_val_auc": float(history["val_auc"].iloc[result.best_epoch - 1]),
    }


def run_unit(unit: Unit, data: GridData, on_epoch_end: EpochCallback | None = None) -> list[CellResult]:
    """Train the unit's model and return one result per cell, in ``unit.cells`` order."""
    started = time.perf_counter()
    params = unit.params
    config = TrainingConfig.from_params(params["training"])
    if unit.model in DUET_VARIANTS:
        model, fit_result = train_duet(
            data.train, data.validation, _base_for_duet(unit, data, config), params["ppg"], config, on_epoch_end
        )
    else:
        model, fit_result = train_base(
            data.train, data.validation, data.num_items, unit.backbone, params["model"], config, on_epoch_end
        )
    results = []
    for cell in unit.cells:
        method = "duet" if cell.method in DUET_VARIANTS else cell.method
        devices = Devices(candidates=data.test, own_rows=data.train if method == "finetune" else None)
        options = params["personalization"].get(method, {})
        personalised = get_method(method).personalize(model, devices, options)
        predictions = predictions_frame(data.test_samples, personalised.scores, cell.method)
        metrics = metrics_table(predictions).drop(columns=["method", "users"]).iloc[0].to_dict()
        results.append(CellResult(
            cell=cell, config_hash=unit.cell_hash(cell), metrics={k: float(v) for k, v in metrics.items()},
            training=training_summary(fit_result), personalization=dict(personalised.report),
            params=unit.cell_params(cell), history=fit_result.history, predictions=predictions,
        ))
    wall = time.perf_counter() - started
    for result in results:
        result.wall_seconds = wall
    return results


def _base_for_duet(unit: Unit, data: GridData, config: TrainingConfig) -> dict[str, Any]:
    """A cold start needs only the base model's shape; a warm start needs it trained
    (trained again here, so units stay independent and can run in any order)."""
    if unit.params["ppg"]["warm_start"]:
        base, result = train_base(
            data.train, data.validation, data.num_items, unit.backbone, unit.params["model"], config
        )
        return model_bundle(base, "base", {"best_epoch": result.best_epoch})
    shape = base_model_config(data.num_items, data.train.history.shape[1], unit.backbone, unit.params["model"])
    return {"config": shape.to_dict()}


# Worker processes of a parallel grid load the dataset's tensors once and keep them,
# and report each finished epoch on the queue the parent gave them.
_LOADED: dict[str, GridData] = {}
_PROGRESS: dict[str, Any] = {}


def init_worker(threads: int, progress: Any = None) -> None:
    """Each worker gets its share of the cores: small models gain little from threads,
    and two processes spinning for the same cores slow each other down badly.
    ``progress`` is a multiprocessing queue receiving ``(unit label, epoch record)``."""
    import torch

    torch.set_num_threads(threads)
    _PROGRESS["queue"] = progress


def run_unit_from_file(unit: Unit, data_path: str) -> list[CellResult]:
    """:func:`run_unit` with the data pickled at ``data_path`` (see :func:`save_grid_data`)."""
    if data_path not in _LOADED:
        _LOADED[data_path] = pd.read_pickle(data_path)
    queue = _PROGRESS.get("queue")
    report = None if queue is None else (lambda record: queue.put((unit.label, record)))
    return run_unit(unit, _LOADED[data_path], report)


def save_grid_data(data: GridData, path: str) -> None:
    pd.to_pickle(data, path)
