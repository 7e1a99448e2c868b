"""`benchmarks/grid.py` on a small generated ml-1m file, its resume, and the notebook."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import PARAMETERS, REPO_ROOT, execute_compare_runs, make_project_copy
from duet_pipeline.data.synthetic import generate_ratings, write_ratings

GRID = REPO_ROOT / "benchmarks" / "grid.py"
METHODS = "base,finetune,duet,duet-pa-gaussian"


def run_grid(project: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    env.pop("DUET_DATA_DIR", None)
    result = subprocess.run(
        [sys.executable, str(GRID), "--project", str(project), "--dataset", "ml-1m", "--backbones", "din",
         "--methods", METHODS, "--seeds", "0,1", "--jobs", "2",
         "--params", "training.max_epochs=2,personalization.finetune.loop_devices=2,"
                     "personalization.duet.latency_devices=5,personalization.duet.latency_batches=2",
         *extra],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def markdown_table(text: str, section: str, heading: str) -> list[dict[str, str]]:
    """Rows (column -> stripped cell) of the first pipe table after ``heading`` (a line
    prefix) inside the ``section`` (a line) of a markdown document."""
    lines = text.splitlines()
    start = lines.index(section)
    at = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(heading))
    table = []
    for line in lines[at + 1:]:
        if line.startswith("|"):
            table.append(line)
        elif table or line.startswith("#"):
            break
    assert len(table) >= 2, f"no table under {heading!r}"
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table]
    header, separator, body = cells[0], cells[1], cells[2:]
    assert all(set(cell) <= set(":-") and cell for cell in separator), table[1]
    assert all(len(row) == len(header) for row in body), table
    return [dict(zip(header, row)) for row in body]



@pytest.fixture(scope="module")
def grid_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A project copy with a generated ratings.dat in the ml-1m layout, after one grid run."""
    root = make_project_copy(tmp_path_factory.mktemp("grid") / "project")
    ratings = generate_ratings(num_users=40, num_items=300, num_rows=1_200, seed=5)
    write_ratings(ratings, root / "data" / "01_raw", "ml-1m", PARAMETERS["datasets"])
    assert (root / "data" / "01_raw" / "ml-1m" / "ratings.dat").is_file()
    return root, run_grid(root)


def test_every_cell_is_a_tagged_mlflow_run_and_results_are_written(grid_project) -> None:
    root, first = grid_project
    assert "ml-1m: 8 cells in 6 trainings; 0 trainings current in ml-1m.csv, 6 to run" in first.stdout
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("duet_grid")
    everything = client.search_runs([experiment.experiment_id])
    parents = [r for r in everything if r.data.tags.get("grid_invocation") == "true"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    runs = [r for r in everything if r not in parents]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in runs)  # nested cells
    assert "RESULTS.md" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    cells = {(r.data.tags["dataset"], r.data.tags["backbone"], r.data.tags["method"], r.data.tags["seed"]) for r in runs}
    assert cells == {("ml-1m", "din", m, s) for m in METHODS.split(",") for s in ("0", "1")}
    for run in runs:
        assert run.info.status == "FINISHED"
        assert 0.0 < run.data.metrics["test.auc"] < 1.0
        assert run.data.params["training.max_epochs"] == "2"
        assert len(client.get_metric_history(run.info.run_id, "epoch.val_auc")) >= 1
    per_seed = pd.read_csv(root / "docs" / "results" / "ml-1m.csv")
    assert len(per_seed) == 8 and set(per_seed["seed"]) == {0, 1}
    assert per_seed["fingerprint"].notna().all() and per_seed["samples_hash"].nunique() == 1
    results = (root / "docs" / "RESULTS.md").read_text()
    assert "## ml-1m" in results and "- cells: 8: 4 methods × 1 backbones, 2 seeds each" in results
    assert (root / "docs" / "results" / "ml-1m_din_frontier.png").is_file()
    quality = markdown_table(results, "## ml-1m", "### Test quality")
    din = [row for row in quality if row["backbone"] == "din"]
    assert sorted(row["method"] for row in din) == sorted(METHODS.split(",")), quality  # one row each
    assert all(row["seeds"] == "2" for row in din), quality
    assert "reproduction AUC" in results and "0.9318" in results  # PROTOCOL section 6 reference, ml-1m


def test_a_second_run_skips_finished_cells(grid_project) -> None:
    root, _ = grid_project
    again = run_grid(root)
    assert "6 trainings current in ml-1m.csv, 0 to run" in again.stdout
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("duet_grid")
    cells = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(cells) == 8


def test_notebook_reads_the_runs_back(grid_project, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = grid_project
    outputs, text = execute_compare_runs(f"sqlite:///{root / 'mlflow.db'}", monkeypatch)
    assert "8 cells" in text
    table = next(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    for method in METHODS.split(","):
        assert method in table
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # bar chart + learning curves
