"""The project's runner (duet_pipeline/runner.py): which node gets how many threads, and
what happens to the other workers when a node fails or a worker dies."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from kedro.io.data_catalog import SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node

from duet_pipeline.runner import CoreRunner, thread_plan
from duet_pipeline.training.cores import available_cores


def threads_now(_: object) -> int:
    return torch.get_num_threads()


def diamond() -> Pipeline:
    """a -> (b, c) -> d: b and c can run at once; a and d cannot overlap anything."""
    return Pipeline([node(threads_now, "start", "a_out", name="a"), node(threads_now, "a_out", "b_out", name="b"),
                     node(threads_now, "a_out", "c_out", name="c"),
                     node(lambda b, c: b + c, ["b_out", "c_out"], "d_out", name="d")])


def test_overlapping_nodes_get_their_share_and_a_node_alone_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUET_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_plan(diamond(), cores=2, workers=2) == {"a": 2, "b": 1, "c": 1, "d": 2}
    assert thread_plan(diamond(), cores=8, workers=2) == {"a": 8, "b": 4, "c": 4, "d": 8}
    monkeypatch.setenv("DUET_THREADS", "3")  # the user's fixed count wins everywhere
    assert set(thread_plan(diamond(), cores=2, workers=2).values()) == {3}


def test_nodes_run_in_workers_with_their_planned_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUET_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pipeline = Pipeline([node(threads_now, "start", "a_out", name="a"), node(threads_now, "a_out", "b_out", name="b"),
                         node(threads_now, "a_out", "c_out", name="c")])
    catalog = SharedMemoryDataCatalog()
    catalog["start"] = 0
    runner = CoreRunner(max_workers=2)  # its manager process holds the shared outputs
    runner.run(pipeline, catalog)
    assert {name: catalog.load(name) for name in ("b_out", "c_out")} == {"b_out": 1, "c_out": 1}
    assert catalog.load("a_out") == thread_plan(pipeline, available_cores(), 2)["a"] == available_cores()


def wait_then_record(seconds: float, record: str) -> str:
    time.sleep(seconds)
    Path(record).write_text("finished")  # must never happen: the run stops it first
    return record


def fail_soon(_: float) -> None:
    time.sleep(0.5)
    raise RuntimeError("the node failed")


def die_soon(_: float) -> None:
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would


@pytest.mark.parametrize("fault", [fail_soon, die_soon])
def test_a_failed_node_or_a_dead_worker_stops_the_others_at_once(fault, tmp_path: Path) -> None:
    record = tmp_path / "slow_node_finished"
    pipeline = Pipeline([node(wait_then_record, ["seconds", "record"], "slow_out", name="slow"),
                         node(fault, "seconds", "fault_out", name="fault")])
    catalog = SharedMemoryDataCatalog()
    catalog["seconds"], catalog["record"] = 30.0, str(record)
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        CoreRunner(max_workers=2).run(pipeline, catalog)
    assert time.monotonic() - started < 15  # not the slow node's 30 s
    if fault is fail_soon:
        assert "the node failed" in str(raised.value)
    time.sleep(1)
    assert not record.exists()
