"""What a ``kedro run`` guarantees, each proved on a real run in a project copy: the same
seed gives the same metrics; a run stopped during training (SIGINT, SIGTERM, SIGKILL)
ends KILLED in MLflow (SIGKILL: at the next run), leaves every dataset's newest version
loadable, and a rerun completes; a run that fails leaves the previous versions as the
ones loaded, reports one line, and is tagged as failed in MLflow."""
from __future__ import annotations

import json
import pickle
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import KEDRO, execute_compare_runs, kedro, latest_version, project_env

TINY = "dataset=ml-100k,training.max_epochs=1,training.progress=false,personalization.finetune.progress=false"
ONE_THREAD = {"DUET_THREADS": "", "OMP_NUM_THREADS": "1"}  # every node on one thread (two reorder float sums)
REPORTING = Path("data") / "08_reporting" / "ml-100k" / "din"

BROKEN_METHOD = '''"""A method whose devices fail: proves what a failed run leaves behind."""
from duet_pipeline.methods.common import MethodSpec

SPEC = MethodSpec(variants={"broken": {}}, cloud_model="base", on_device="nothing",
                  description="fails on the device", order=95)


def personalize(bundle, devices, options, variant):
    raise RuntimeError("the device lost its model")
'''


def versioned_folders(project: Path) -> list[Path]:
    """Every versioned dataset folder (``<file>/<version>/<file>``) under data/0[2-8]*."""
    return sorted({version.parent for layer in (project / "data").glob("0[2-8]_*")
                   for version in layer.rglob("*") if version.is_dir() and (version / version.parent.name).is_file()})


def load_latest(folder: Path) -> object:
    newest = sorted(v for v in folder.iterdir() if (v / folder.name).exists())[-1] / folder.name
    loaders = {".parquet": pd.read_parquet, ".csv": pd.read_csv, ".json": lambda p: json.loads(p.read_text()),
               ".pkl": lambda p: pickle.loads(p.read_bytes()), ".md": Path.read_text, ".png": Path.read_bytes,
               ".onnx": Path.read_bytes}
    return loaders[newest.suffix](newest)


def test_the_same_seed_gives_bit_identical_metrics_whatever_the_runner_and_the_notebook_reads_the_runs(
    tiny_ml100k: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's runner (base, fine-tuning and DUET+SWA at once, one thread each) gives
    the metrics of one node at a time on one thread, byte for byte."""
    tables = []
    for runner, env in ((), {"DUET_THREADS": "", "OMP_NUM_THREADS": ""}), (("--runner=SequentialRunner",), ONE_THREAD):
        kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base finetune duet+swa",
                       *runner, env=env)
        tables.append(latest_version(tiny_ml100k / REPORTING / "metrics_table.csv"))
    assert tables[0] != tables[1]  # two versions...
    assert tables[0].read_bytes() == tables[1].read_bytes()  # ...with the same bytes
    notebook_reads_the_kedro_runs(tiny_ml100k, monkeypatch)


def notebook_reads_the_kedro_runs(tiny_ml100k: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """notebooks/compare_runs.ipynb on a project with `kedro run`s only (no grid)."""
    outputs, text = execute_compare_runs(f"sqlite:///{tiny_ml100k / 'mlflow.db'}", monkeypatch)
    assert "3 cells: {('ml-100k', 'din'): 3}" in text  # no grid; the latest run of each method
    table = next(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    assert "duet+swa" in table and "base" in table
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # bar chart + learning curves


def mlflow_runs(project: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(name, status, tags) of every run, oldest first."""
    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute("select name, status, run_uuid from runs order by start_time").fetchall()
        return [(name, status, dict(db.execute("select key, value from tags where run_uuid = ?", (uuid,)).fetchall()))
                for name, status, uuid in runs]


def start_and_stop(project: Path, sent: signal.Signals) -> int:
    """Start a long ``kedro run``, send ``sent`` while DUET trains (the samples are saved)."""
    command = [KEDRO, "run", "--pipelines=duet",
               f"--params={TINY},training.max_epochs=500,training.patience=500,methods=duet+swa"]
    # A child of a non-interactive shell inherits an ignored SIGINT: restore the default.
    child = subprocess.Popen(command, cwd=project, env=project_env(project), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in child.stdout:
            if "Running node: train_duet_swa_model" in line:
                break
        time.sleep(1.0)
        child.send_signal(sent)
        child.communicate(timeout=60)
    finally:
        child.kill()
    return child.returncode


@pytest.mark.parametrize("sent,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_run_stopped_during_training_ends_killed_keeps_loadable_versions_and_a_rerun_completes(
    tiny_ml100k: Path, sent: signal.Signals, status: int
) -> None:
    assert start_and_stop(tiny_ml100k, sent) == status
    folders = versioned_folders(tiny_ml100k)
    assert any(f.name == "train_samples.parquet" for f in folders)
    assert not any(f.name == "duet_swa_model.pkl" for f in folders)
    for folder in folders:
        load_latest(folder)  # raises if the newest version is unreadable
    [(_, stopped, tags)] = mlflow_runs(tiny_ml100k)
    if sent == signal.SIGKILL:  # nothing ran at the kill: the next run closes it
        assert stopped == "RUNNING" and tags["pid"].isdigit()
    else:
        assert stopped == "KILLED" and tags["outcome"] == f"killed by {sent.name}"
        assert tags["interrupted_at_node"] == "train_duet_swa_model"
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=duet+swa")
    assert list(pd.read_csv(latest_version(tiny_ml100k / REPORTING / "metrics_table.csv"))["method"]) == ["duet+swa"]
    assert [status for _, status, _ in mlflow_runs(tiny_ml100k)] == ["KILLED", "FINISHED"]


def test_a_failed_run_leaves_the_previous_versions_as_the_ones_loaded(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base")
    before = {f: sorted(f.iterdir()) for f in versioned_folders(tiny_ml100k)}
    (tiny_ml100k / "src" / "duet_pipeline" / "methods" / "broken.py").write_text(BROKEN_METHOD)

    failed = kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base broken", check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1
    assert "Error: RuntimeError: the device lost its model" in output
    assert "Traceback" not in output and "the device lost its model" in (tiny_ml100k / "logs" / "kedro.log").read_text()
    # Every dataset's versions are those of the first run: the failed run's are set aside.
    assert {f: sorted(f.iterdir()) for f in versioned_folders(tiny_ml100k)} == before
    set_aside = list((tiny_ml100k / "data" / "09_failed_runs").rglob("base_model.pkl"))
    assert len(set_aside) == 2  # <version>/data/06_models/ml-100k/din/base_model.pkl/base_model.pkl
    runs = mlflow_runs(tiny_ml100k)
    tags = runs[-1][2]
    assert [(name, status) for name, status, _ in runs] == [
        ("ml-100k/din/base", "FINISHED"), ("ml-100k/din/base,broken", "FAILED")]
    assert tags["outcome"] == "failed" and tags["failed_node"] == "personalize_broken"
    assert "the device lost its model" in tags["error"]
    # Resuming loads the first run's complete versions.
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base", "--from-nodes=personalize_base")
