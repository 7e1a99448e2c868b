"""Faults in the middle of a save, and two runs at once, on real ``kedro run``s.

The faults are injected into the child process by a test-only ``sitecustomize`` module
(found on PYTHONPATH at interpreter start): when ``FAULT`` is set, the pickle writer of
the model bundles writes half of the bytes and then dies (``kill``: SIGKILL, as a power
loss: every process of the run) or fails with ENOSPC (``disk-full``).
"""
from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from kedro.io.core import Version
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.pickle import PickleDataset

from conftest import KEDRO, kedro, project_env
from duet_pipeline import versions as versions_module
from duet_pipeline.versions import make_atomic, partial_path, remove_partials, unique_session_timestamp

TINY = "dataset=ml-100k,training.max_epochs=1,training.progress=false,personalization.finetune.progress=false"
MODELS = Path("data") / "06_models" / "ml-100k" / "din"

FAULTY_PICKLE = '''
import errno, os, pickle, signal

_dump = pickle.dump


def dump(obj, file, *args, **kwargs):
    fault = os.environ.get("FAULT")
    if fault and isinstance(obj, dict) and "state_dict" in obj:  # a model bundle
        data = pickle.dumps(obj)
        file.write(data[: len(data) // 2])
        file.flush()
        if fault == "kill":  # a power loss: the run's every process (its own session)
            os.killpg(0, signal.SIGKILL)
        raise OSError(errno.ENOSPC, "No space left on device")
    return _dump(obj, file, *args, **kwargs)


pickle.dump = dump
'''


@pytest.fixture
def faulty(tmp_path: Path) -> Path:
    folder = tmp_path / "faults"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(FAULTY_PICKLE)
    return folder


def run_with_fault(project: Path, faults: Path, fault: str, *args: str) -> subprocess.CompletedProcess:
    env = project_env(project)
    env = {**env, "FAULT": fault, "PYTHONPATH": f"{faults}:{env['PYTHONPATH']}"}
    return subprocess.run([KEDRO, "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600,
                          start_new_session=True)


def versions(folder: Path) -> list[str]:
    return sorted(v.name for v in folder.iterdir() if (v / folder.name).exists())


def test_a_save_cut_short_is_not_a_version_and_its_leftover_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    first = ParquetDataset(filepath=str(path), version=Version(None, "2026-01-01T00.00.00.000Z"))
    make_atomic(first, "table")
    first.save(pd.DataFrame({"a": [1, 2]}))
    second = ParquetDataset(filepath=str(path), version=Version(None, "2026-01-02T00.00.00.000Z"))
    make_atomic(second, "table")
    with pytest.raises(Exception):
        second.save(pd.DataFrame({"a": [object()]}))  # pyarrow cannot write it: the save fails
    assert versions(path) == ["2026-01-01T00.00.00.000Z"]
    assert not list(path.rglob("*.partial"))  # an exception removes its own partial
    # A leftover from a killed process is ignored on load and removed by the next run;
    # a live process's partial (this one's) and one from another host are left alone.
    leftover = partial_path(path / "2026-01-03T00.00.00.000Z" / "table.parquet", pid=dead_pid())
    live = partial_path(path / "2026-01-04T00.00.00.000Z" / "table.parquet")
    elsewhere = partial_path(path / "2026-01-05T00.00.00.000Z" / "table.parquet", pid=dead_pid(), host="other.host")
    for partial in (leftover, live, elsewhere):
        partial.parent.mkdir()
        partial.write_bytes(b"PAR1 half")
    latest = ParquetDataset(filepath=str(path), version=Version(None, None))
    assert latest.load()["a"].tolist() == [1, 2]
    assert remove_partials(tmp_path) == [leftover] and not leftover.parent.exists()
    assert live.exists() and elsewhere.exists()


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


PAUSED_SAVES = 25


class PauseInsideSave:
    """Pickled in the middle of a save (its partial file is open): says so on ``inside``
    and waits for a word on ``resume`` before the save goes on."""

    queues: tuple = ()

    def __reduce__(self):
        inside, resume = PauseInsideSave.queues
        inside.put(True)
        resume.get(timeout=60)
        return (dict, ())


def _save_versions_pausing_inside(path: Path, stamps: list[str], inside, resume) -> None:
    PauseInsideSave.queues = (inside, resume)
    for stamp in stamps:
        dataset = PickleDataset(filepath=str(path), version=Version(None, stamp))
        make_atomic(dataset, "model")
        dataset.save({"stamp": stamp, "pause": PauseInsideSave()})


def test_a_run_starting_while_another_is_inside_a_save_leaves_that_save_alone(tmp_path: Path) -> None:
    """What a second run does at its start (remove_partials) happens while the first run's
    save is half-done, 25 times: every save still completes as its own version, while a
    killed writer's leftover, planted each time, is removed each time."""
    data = tmp_path / "data"
    folder = data / "06_models" / "model.pkl"
    stamps = [f"2026-01-01T00.00.{second:02d}.000Z" for second in range(PAUSED_SAVES)]
    context = multiprocessing.get_context("fork")
    inside, resume = context.Queue(), context.Queue()
    writer = context.Process(target=_save_versions_pausing_inside, args=(folder, stamps, inside, resume))
    writer.start()
    try:
        for number in range(PAUSED_SAVES):
            inside.get(timeout=60)
            leftover = partial_path(data / "02_intermediate" / "t.parquet" / f"v{number}" / "t.parquet", pid=dead_pid())
            leftover.parent.mkdir(parents=True)
            leftover.write_bytes(b"half")
            [live] = folder.rglob("*.partial")
            assert remove_partials(data) == [leftover]  # the second run's start
            assert live.exists()
            resume.put(True)
        writer.join(timeout=60)
    finally:
        writer.kill()
    assert writer.exitcode == 0
    assert versions(folder) == stamps and not list(data.rglob("*.partial"))
    for stamp in stamps:
        assert PickleDataset(filepath=str(folder), version=Version(stamp, None)).load()["stamp"] == stamp


def test_a_run_killed_mid_save_leaves_the_previous_version_and_resumes(tiny_ml100k: Path, faulty: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base")
    models = tiny_ml100k / MODELS / "base_model.pkl"
    complete = versions(models)
    killed = run_with_fault(tiny_ml100k, faulty, "kill", "--pipelines=duet", f"--params={TINY},methods=base")
    assert killed.returncode == -9
    assert versions(models) == complete  # the half-written model is no version
    assert len(list(models.rglob(".base_model.pkl.*.partial"))) == 1
    resumed = kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base",
                    "--from-nodes=personalize_base")
    assert "Loading data from base_model" in resumed.stdout + resumed.stderr
    assert not list(models.rglob("*.partial"))  # cleaned up at the start of the next run
    bundle = pickle.loads((models / complete[-1] / "base_model.pkl").read_bytes())
    assert "state_dict" in bundle


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_previous_version(
    tiny_ml100k: Path, faulty: Path
) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base")
    models = tiny_ml100k / MODELS / "base_model.pkl"
    complete = versions(models)
    full = run_with_fault(tiny_ml100k, faulty, "disk-full", "--pipelines=duet", f"--params={TINY},methods=base")
    output = full.stdout + full.stderr
    assert full.returncode == 1 and "Traceback" not in output
    [line] = [line for line in output.splitlines() if line.startswith("Error:")]
    assert "disk full while saving dataset 'base_model'" in line and "MB free" in line
    assert "its previous version's size" in line and "No space left on device" in line
    assert versions(models) == complete and not list(models.rglob("*.partial"))


def test_session_timestamps_taken_in_one_millisecond_still_differ_and_increase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(versions_module, "generate_timestamp", lambda: "2026-12-02T06.18.04.999Z")
    claims = tmp_path / "claims"
    stamps = [unique_session_timestamp(claims) for _ in range(3)]
    assert stamps == ["2026-12-02T06.18.04.999Z", "2026-12-02T06.18.05.000Z", "2026-12-02T06.18.05.001Z"]
    monkeypatch.setattr(versions_module, "generate_timestamp", lambda: "2026-12-02T06.18.04.000Z")  # clock set back
    assert unique_session_timestamp(claims) == "2026-12-02T06.18.05.002Z"


def _take_stamps(claims: Path, count: int = 300) -> list[str]:
    return [unique_session_timestamp(claims) for _ in range(count)]


def test_session_timestamps_from_processes_at_once_are_all_distinct(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=3) as pool:
        taken = [stamp for stamps in pool.map(_take_stamps, [tmp_path / "claims"] * 3) for stamp in stamps]
    assert len(set(taken)) == len(taken) == 900


def test_two_runs_at_once_both_complete_and_both_are_in_mlflow(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=ingestion,feature_engineering", f"--params={TINY}")  # shared inputs once
    children = [subprocess.Popen([KEDRO, "run", "--pipelines=duet", f"--params={TINY},backbone={b},methods=base duet+swa"],
                                 cwd=tiny_ml100k, env={**project_env(tiny_ml100k), "DUET_THREADS": "1"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for b in ("gru4rec", "sasrec")]
    outputs = [child.communicate(timeout=600)[0] for child in children]
    for child, output in zip(children, outputs):
        assert child.returncode == 0, output[-3000:]
        assert "database is locked" not in output
    with sqlite3.connect(tiny_ml100k / "mlflow.db") as db:
        names = sorted(n for (n,) in db.execute("select name from runs where status = 'FINISHED'"))
    assert names == ["ml-100k/din/feature_engineering+ingestion", "ml-100k/gru4rec/base,duet+swa",
                     "ml-100k/sasrec/base,duet+swa"]
    for backbone in ("gru4rec", "sasrec"):
        table = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / backbone / "metrics_table.csv"
        assert len(versions(table)) == 1
