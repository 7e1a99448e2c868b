"""The per-seed record: cells replaced by their rerun, stale cells set aside, the rest kept."""
from __future__ import annotations

import pandas as pd

from duet_pipeline.experiments.fingerprint import encode
from duet_pipeline.experiments.grid import Cell
from duet_pipeline.experiments.record import (STALE_CODE, STALE_DATA, STALE_METHOD, STALE_PARAMS, Record)

PRINT = [0.5, 0.25, -1.0]


def row(method: str, seed: int, auc: float, **extra) -> dict:
    return {"backbone": "din", "method": method, "seed": seed, "auc": auc, "params_hash": f"p-{method}",
            "samples_hash": "s1", "fingerprint": encode(PRINT), "code_version": "v1", **extra}


def history(epochs: int) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(1, epochs + 1), "val_auc": [0.8] * epochs})


def test_a_rerun_replaces_its_cells_and_keeps_the_others(tmp_path) -> None:
    record = Record(tmp_path, "ml-100k")
    record.add([row("base", 0, 0.80), row("base", 1, 0.81)], [history(2), history(3)])
    record.add([row("base", 0, 0.82)], [history(1)])
    again = Record(tmp_path, "ml-100k")  # read back from disk
    assert sorted(again.cells[["seed", "auc"]].values.tolist()) == [[0, 0.82], [1, 0.81]]
    assert again.history.groupby("seed").size().to_dict() == {0: 1, 1: 3}
    assert [c.seed for c in again.missing([Cell("ml-100k", "din", "base", s) for s in (0, 1, 2)])] == [2]
    assert not list(tmp_path.glob(".*.partial"))


def test_staleness_names_what_changed(tmp_path) -> None:
    record = Record(tmp_path, "ml-100k")
    record.add([row("base", 0, 0.8), row("lhuc", 0, 0.8), row("poso", 0, 0.8), row("can", 0, 0.8, samples_hash="s0"),
                row("apg", 0, 0.8)], [history(1)] * 5)
    hashes = {("din", m, 0): f"p-{m}" for m in ("base", "lhuc", "poso", "can")}
    hashes[("din", "poso", 0)] = "p-changed"
    moved = [v * (1 + 1e-5) for v in PRINT]  # ten times the tolerance
    fingerprints = {("din", m): PRINT for m in ("base", "poso", "can")} | {("din", "lhuc"): moved}
    reasons = record.staleness(hashes, fingerprints, "s1")
    assert dict(zip(record.cells["method"], reasons)) == {
        "base": "", "lhuc": STALE_CODE, "poso": STALE_PARAMS, "can": STALE_DATA, "apg": STALE_METHOD}
    # Within the tolerance (a different CPU's rounding) a cell stays current.
    close = {k: [v * (1 + 1e-9) for v in PRINT] for k in fingerprints}
    assert record.staleness(hashes, close, "s1")[record.cells["method"] == "base"].item() == ""


def test_stale_cells_are_set_aside_never_lost(tmp_path) -> None:
    record = Record(tmp_path, "ml-100k")
    record.add([row("base", 0, 0.8), row("lhuc", 0, 0.7)], [history(1), history(2)])
    reasons = pd.Series(["", STALE_CODE], index=record.cells.index)
    assert record.set_aside(reasons) == 1
    again = Record(tmp_path, "ml-100k")
    assert again.cells["method"].tolist() == ["base"] and again.history["method"].tolist() == ["base"]
    stale = pd.read_csv(tmp_path / "ml-100k_stale.csv")
    assert stale[["method", "auc", "stale"]].values.tolist() == [["lhuc", 0.7, STALE_CODE]]
