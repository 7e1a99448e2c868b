"""A method added as one module plus one YAML block runs as a one-cell grid."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd

from conftest import REPO_ROOT, add_toy_method, make_project_copy, project_env
from duet_pipeline.data.synthetic import generate_ratings, write_ratings


def grid_in_project_copy(tmp_path: Path, *args: str,
                         toy_method: bool = False) -> tuple[Path, subprocess.CompletedProcess]:
    """A project copy with generated ml-100k-shaped data (and the toy method), and
    benchmarks/grid.py run in it with ``args``, one job, one thread."""
    root = make_project_copy(tmp_path / "project")
    write_ratings(generate_ratings(num_users=40, num_items=300, num_rows=1_200, seed=5),
                  root / "data" / "01_raw" / "ml-100k", "ml-100k")
    if toy_method:
        add_toy_method(root)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "grid.py"), "--project", str(root), "--dataset", "ml-100k",
         "--seeds", "0", "--jobs", "1", *args],
        cwd=root, env={**project_env(root), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return root, result


def test_toy_method_as_a_one_cell_grid(tmp_path: Path) -> None:
    root, result = grid_in_project_copy(tmp_path, "--backbones", "din", "--methods", "popularity", toy_method=True)
    assert "ml-100k: 1 cells in 1 trainings" in result.stdout
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("duet_grid").experiment_id])
    assert [r.data.tags["method"] for r in runs] == ["popularity"]
    assert 0.5 < runs[0].data.metrics["test.auc"] < 1.0  # popular items are likelier positives
    assert runs[0].data.params["personalization.popularity.smoothing"] == "1.0"
    per_seed = pd.read_csv(root / "docs" / "results" / "ml-100k.csv")
    assert per_seed[["method", "seed"]].values.tolist() == [["popularity", 0]]


def test_a_dynamic_weight_method_as_a_one_cell_grid(tmp_path: Path) -> None:
    root, _ = grid_in_project_copy(tmp_path, "--backbones", "gru4rec", "--methods", "base,ppnet",
                                   "--params", "training.max_epochs=1,personalization.finetune.loop_devices=2")
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = {r.data.tags["method"]: r for r in client.search_runs([client.get_experiment_by_name("duet_grid").experiment_id])}
    assert set(runs) == {"base", "ppnet"}
    assert runs["ppnet"].data.metrics["personalization.payload_bytes"] == 32 * 4
    assert runs["ppnet"].data.params["personalization.ppnet.gate_hidden"] == "64"
    results = (root / "docs" / "RESULTS.md").read_text()
    assert "### By user activity" in results and "ppnet - base" in results


def test_dccl_as_one_grid_unit_with_both_of_its_cells(tmp_path: Path) -> None:
    root, result = grid_in_project_copy(
        tmp_path, "--backbones", "sasrec", "--methods", "metapatch,momodistill",
        "--params", "training.max_epochs=1,personalization.dccl.rounds=1,personalization.dccl.distill_max_epochs=1")
    assert "ml-100k: 2 cells in 1 trainings" in result.stdout
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = {r.data.tags["method"]: r for r in client.search_runs([client.get_experiment_by_name("duet_grid").experiment_id])}
    assert set(runs) == {"metapatch", "momodistill"}
    assert runs["metapatch"].data.metrics["personalization.upload_bytes_per_round"] == 8 * 4
    assert "personalization.round1_auc" in runs["momodistill"].data.metrics
    results = (root / "docs" / "RESULTS.md").read_text()
    assert "### By round of the device-cloud loop" in results
    per_seed = pd.read_csv(root / "docs" / "results" / "ml-100k.csv")
    assert {"personalization_round0_auc", "personalization_round1_auc"} <= set(per_seed.columns)
