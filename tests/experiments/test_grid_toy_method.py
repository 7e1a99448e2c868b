"""One grid carries every kind of method: a toy method added as one module plus one YAML
block, base, a dynamic-weight method, and DCCL's two cells of one training."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import PARAMETERS, REPO_ROOT, add_toy_method, make_project_copy, project_env
from duet_pipeline.data.synthetic import generate_ratings, write_ratings


def grid_in_project_copy(tmp_path: Path, *args: str,
                         toy_method: bool = False) -> tuple[Path, subprocess.CompletedProcess]:
    """A project copy with generated ml-100k-shaped data (and the toy method), and
    benchmarks/grid.py run in it with ``args``, one job, one thread."""
    root = make_project_copy(tmp_path / "project")
    write_ratings(generate_ratings(num_users=40, num_items=300, num_rows=1_200, seed=5),
                  root / "data" / "01_raw", "ml-100k", PARAMETERS["datasets"])
    if toy_method:
        add_toy_method(root)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "grid.py"), "--project", str(root), "--dataset", "ml-100k",
         "--seeds", "0", "--jobs", "1", *args],
        cwd=root, env={**project_env(root), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return root, result


METHODS = "popularity,base,ppnet,metapatch,momodistill"



@pytest.fixture(scope="module")
def one_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, dict]:
    """One grid of every kind of method the grid must carry: the toy method (one module and
    one YAML block), base, a dynamic-weight method and DCCL's two cells of one training.
    Its cells' MLflow runs by method."""
    root, result = grid_in_project_copy(
        tmp_path_factory.mktemp("grid"), "--backbones", "gru4rec", "--methods", METHODS,
        "--params", "training.max_epochs=1,personalization.finetune.loop_devices=2,personalization.dccl.rounds=1,"
                    "personalization.dccl.distill_max_epochs=1", toy_method=True)
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("duet_grid").experiment_id
    cells = [r for r in client.search_runs([experiment]) if "mlflow.parentRunId" in r.data.tags]
    return root, result, {r.data.tags["method"]: r for r in cells}


def test_every_cell_is_one_run_and_dccl_shares_one_training(one_grid) -> None:
    root, result, runs = one_grid
    assert "ml-100k: 5 cells in 4 trainings" in result.stdout  # metapatch and momodistill: one
    assert set(runs) == set(METHODS.split(","))
    per_seed = pd.read_csv(root / "docs" / "results" / "ml-100k.csv")
    assert sorted(per_seed[["method", "seed"]].values.tolist()) == sorted([m, 0] for m in METHODS.split(","))


def test_toy_method_as_a_grid_cell(one_grid) -> None:
    _, _, runs = one_grid
    assert 0.5 < runs["popularity"].data.metrics["test.auc"] < 1.0  # popular items are likelier positives
    assert runs["popularity"].data.params["personalization.popularity.smoothing"] == "1.0"


def test_a_dynamic_weight_method_as_a_grid_cell(one_grid) -> None:
    root, _, runs = one_grid
    assert runs["ppnet"].data.metrics["personalization.payload_bytes"] == 32 * 4
    assert runs["ppnet"].data.params["personalization.ppnet.gate_hidden"] == "64"
    results = (root / "docs" / "RESULTS.md").read_text()
    assert "### By user activity" in results and "ppnet − base" in results


def test_dccl_as_one_grid_unit_with_both_of_its_cells(one_grid) -> None:
    root, _, runs = one_grid
    assert runs["metapatch"].data.metrics["personalization.upload_bytes_per_round"] == 8 * 4
    assert "personalization.round1_auc" in runs["momodistill"].data.metrics
    results = (root / "docs" / "RESULTS.md").read_text()
    assert "### By round of the device-cloud loop" in results
    per_seed = pd.read_csv(root / "docs" / "results" / "ml-100k.csv")
    assert {"personalization_round0_auc", "personalization_round1_auc"} <= set(per_seed.columns)
