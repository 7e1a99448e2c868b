"""Running one unit of a grid: train its model, personalise every device, score each cell."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from duet_pipeline.evaluation.reporting import activity_table, metrics_table
from duet_pipeline.methods import get_method
from duet_pipeline.training.loop import TrainingConfig
from duet_pipeline.training.models import CloudData, EpochCallback, Trained, train_base
from duet_pipeline.samples import SampleTensors
from duet_pipeline.training.tensors import to_tensors

from .grid import Cell, Unit


@dataclass
class GridData:
    """The samples every unit of one dataset reads, converted to tensors once."""

    train: SampleTensors
    validation: SampleTensors
    test: SampleTensors
    num_items: int

    @classmethod
    def from_frames(cls, train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, num_items: int) -> "GridData":
        return cls(to_tensors(train), to_tensors(validation), to_tensors(test), num_items)


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
    params_hash: str = ""  # the hash without the code version (the record's parameters hash)
    wall_seconds: float = 0.0
    activity: dict[str, float | str] = field(default_factory=dict)  # see activity_metrics


# Per user-activity quartile, these test metrics are kept with a cell.
ACTIVITY_METRICS = ("auc", "ndcg@10")


def activity_metrics(predictions: pd.DataFrame, train: SampleTensors) -> dict[str, float | str]:
    """Test metrics per quartile of the users' train positives (the groups POSO is meant
    to help): ``q1_auc``, ``q1_ndcg@10``, ``q1_users`` and ``q1_positives`` (the range,
    "3-17"), lightest users first."""
    table = activity_table(predictions, train.user[train.label > 0].numpy())
    found: dict[str, float | str] = {}
    for row in table.to_dict("records"):
        quartile, positives = row["activity"].split(" ")[:2]  # "Q1:", "3-17"
        prefix = quartile.rstrip(":").lower()
        found[f"{prefix}_positives"] = positives
        found[f"{prefix}_users"] = float(row["users"])
        found.update({f"{prefix}_{name}": float(row[name]) for name in ACTIVITY_METRICS})
    return found


def training_summary(result: Trained) -> dict[str, float]:
    history = result.history
    summary = {"best_epoch": float(result.best_epoch), "epochs": float(len(history))}
    if len(history):
        summary.update({
            "seconds_per_epoch": float(history["train_seconds"].mean()),
            "train_rows_per_second": float(history["train_rows_per_second"].mean()),
            "best_val_auc": float(history["val_auc"].iloc[result.best_epoch - 1]),
        })
    return summary


def run_unit(unit: Unit, data: GridData, on_epoch_end: EpochCallback | None = None) -> list[CellResult]:
    """Train the unit's cloud model and return one result per cell, in ``unit.cells`` order."""
    started = time.perf_counter()
    params = unit.params
    cloud = CloudData(data.train, data.validation, data.num_items, unit.backbone, params["model"],
                      params["backbones"], TrainingConfig.from_params(params["training"]))
    methods = [get_method(cell.method) for cell in unit.cells]
    options = {m.name: m.parse_options(params["personalization"].get(m.spec.block)) for m in methods}
    trainer = methods[0]
    # A base model the method starts from is trained inside the unit, so units stay
    # independent and can run in any order.
    starts_from_base = trainer.spec.cloud_model != "base" and trainer.needs_base_model(options[trainer.name])
    base = train_base(cloud).bundle if starts_from_base else None
    model = trainer.train_cloud_model(cloud, options[trainer.name], base, on_epoch_end)
    results = []
    for cell, method in zip(unit.cells, methods):
        predictions, report = method.predictions(model.bundle, data.test, data.train, options[method.name])
        metrics = metrics_table(predictions).drop(columns=["method", "users"]).iloc[0].to_dict()
        results.append(CellResult(
            cell=cell, config_hash=unit.cell_hash(cell), metrics={k: float(v) for k, v in metrics.items()},
            training=training_summary(model), personalization=report,
            params=unit.cell_params(cell), history=model.history, predictions=predictions,
            params_hash=unit.cell_hash(cell, with_code=False), activity=activity_metrics(predictions, data.train),
        ))
    wall = time.perf_counter() - started
    for result in results:
        result.wall_seconds = wall
    return results


# Worker processes of a parallel grid load the dataset's tensors once and keep them,
# and report each finished epoch on the queue the parent gave them.
_LOADED: dict[str, GridData] = {}
_PROGRESS: dict[str, Any] = {}


def init_worker(threads: int, progress: Any = None) -> None:
    """Each worker gets a fixed share of the cores (``DUET_THREADS``, see
    training/cores.py): fixed, so that a cell's numbers do not depend on what else ran
    beside it. ``progress`` is a multiprocessing queue receiving ``(unit label, epoch record)``."""
    import os

    import torch

    os.environ["DUET_THREADS"] = str(threads)
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
