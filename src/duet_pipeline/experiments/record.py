"""The per-seed record of a dataset's grid, written as cells finish.

``docs/results/<dataset>.csv`` holds one row per cell (backbone, method, seed): its test
metrics, per user-activity quartile too, its training summary, its method's cost report
and what it was computed from (samples hash, parameters hash, numerics fingerprint,
code version, machine). ``<dataset>_history.csv`` holds the training curve of each
cell's model. The record is the result: reports are made from it alone (a clean
checkout has no MLflow store), and a grid decides from it which cells it must still run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from duet_pipeline.training.tracking import mlflow_metric_name

from .fingerprint import same_numerics
from .grid import Cell
from .runner import CellResult

CELL = ["backbone", "method", "seed"]
# Why a recorded cell is not current (see :meth:`Record.staleness`).
STALE_DATA, STALE_PARAMS, STALE_CODE = "other samples", "other parameters", "other numerics"
STALE_METHOD = "method or backbone no longer registered"


@dataclass(frozen=True)
class Provenance:
    """What a grid invocation's cells were computed from and on."""

    samples_hash: str
    code_version: str
    machine: str
    threads: int


def cell_row(result: CellResult, fingerprint: str, provenance: Provenance, finished: str) -> dict:
    """A finished cell as one record row."""
    cell = result.cell
    return {
        "backbone": cell.backbone, "method": cell.method, "seed": cell.seed,
        **result.metrics,
        **{f"activity_{key}": value for key, value in result.activity.items()},
        **result.training,
        **{f"personalization_{mlflow_metric_name(key)}": float(value) for key, value in result.personalization.items()},
        "wall_seconds": result.wall_seconds,
        "params_hash": result.params_hash, "samples_hash": provenance.samples_hash, "fingerprint": fingerprint,
        "code_version": provenance.code_version, "machine": provenance.machine, "threads": provenance.threads,
        "finished": finished,
    }


class Record:
    """One dataset's record under ``folder`` (docs/results)."""

    def __init__(self, folder: Path, dataset: str) -> None:
        self.cells_path = folder / f"{dataset}.csv"
        self.history_path = folder / f"{dataset}_history.csv"
        self.stale_path = folder / f"{dataset}_stale.csv"
        self.invocations_path = folder / f"{dataset}_invocations.csv"
        self.cells = pd.read_csv(self.cells_path) if self.cells_path.exists() else pd.DataFrame(columns=CELL)
        self.history = (pd.read_csv(self.history_path) if self.history_path.exists()
                        else pd.DataFrame(columns=[*CELL, "epoch"]))

    def add(self, rows: list[dict], histories: list[pd.DataFrame]) -> None:
        """Record finished cells (replacing earlier rows of the same cells) and their
        models' curves; both files are replaced atomically."""
        new = pd.DataFrame(rows)
        self.cells = _replace(self.cells, new)
        curves = pd.concat([h.assign(**dict(zip(CELL, key))) for key, h in
                            zip(new[CELL].itertuples(index=False), histories)], ignore_index=True)
        self.history = _replace(self.history, curves[[*CELL, *curves.columns.drop(CELL)]])
        _write(self.cells, self.cells_path)
        _write(self.history, self.history_path)

    def missing(self, cells: list[Cell]) -> list[Cell]:
        """Those of ``cells`` the record does not hold."""
        held = {(b, m, int(s)) for b, m, s in self.cells[CELL].itertuples(index=False)}
        return [c for c in cells if (c.backbone, c.method, c.seed) not in held]

    def log_invocation(self, wall_seconds: float, cells_run: int, jobs: int, provenance: Provenance,
                       complete: bool) -> None:
        """Append a grid invocation to ``<dataset>_invocations.csv`` (the record's wall time)."""
        runs = pd.read_csv(self.invocations_path) if self.invocations_path.exists() else pd.DataFrame()
        now = datetime.now(timezone.utc)
        row = {"ended": now.strftime("%Y-%m-%d %H:%M UTC"), "wall_seconds": round(wall_seconds, 1),
               "cells_run": cells_run, "jobs": jobs, "threads": provenance.threads, "machine": provenance.machine,
               "code_version": provenance.code_version, "complete": complete}
        _write(pd.concat([runs, pd.DataFrame([row])], ignore_index=True), self.invocations_path)

    def set_aside(self, reasons: pd.Series) -> int:
        """Move the rows with a reason (see :meth:`staleness`) to ``<dataset>_stale.csv``,
        replacing earlier stale rows of the same cells: they are never mixed into a
        table, and stay readable for a report's --show-stale."""
        stale = self.cells[reasons != ""].assign(stale=reasons[reasons != ""])
        if stale.empty:
            return 0
        kept = pd.read_csv(self.stale_path) if self.stale_path.exists() else pd.DataFrame(columns=CELL)
        self.cells = self.cells[reasons == ""].reset_index(drop=True)
        keys = pd.MultiIndex.from_frame(stale[CELL].astype({"seed": int}))
        self.history = self.history[~pd.MultiIndex.from_frame(self.history[CELL].astype({"seed": int})).isin(keys)]
        _write(_replace(kept, stale), self.stale_path)
        _write(self.cells, self.cells_path)
        _write(self.history, self.history_path)
        return len(stale)

    def staleness(self, params_hashes: dict[tuple, str], fingerprints: dict[tuple[str, str], list[float]],
                  samples_hash: str) -> pd.Series:
        """Per recorded row, why it is not what the current data, parameters and code
        compute ("" where it is). ``params_hashes``: (backbone, method, seed) -> hash of
        the cell's parameters now; ``fingerprints``: (backbone, method) -> fingerprint now."""
        reasons = []
        for row in self.cells.itertuples(index=False):
            key = (row.backbone, row.method, int(row.seed))
            fingerprint = getattr(row, "fingerprint", None)
            if key not in params_hashes:
                reasons.append(STALE_METHOD)
            elif getattr(row, "samples_hash", None) != samples_hash:
                reasons.append(STALE_DATA)
            elif params_hashes.get(key) != getattr(row, "params_hash", None):
                reasons.append(STALE_PARAMS)
            elif not isinstance(fingerprint, str) or not same_numerics(fingerprint, fingerprints[key[:2]]):
                reasons.append(STALE_CODE)
            else:
                reasons.append("")
        return pd.Series(reasons, index=self.cells.index, dtype=object)


def _replace(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` without the cells ``new`` holds, then ``new``."""
    if old.empty:
        return new.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(new[CELL].astype({"seed": int}))
    kept = old[~pd.MultiIndex.from_frame(old[CELL].astype({"seed": int})).isin(keys)]
    return pd.concat([kept, new], ignore_index=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    frame.to_csv(partial, index=False, float_format="%.8g")
    os.replace(partial, path)
