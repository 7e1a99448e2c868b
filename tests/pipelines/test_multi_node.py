"""training.distributed.nodes: 2 as two `kedro run`s on one machine, each in its own project
copy (two machines, two disks), joined by a rendezvous on 127.0.0.1.

The two nodes' replicas compute the global batch's gradient as two halves that DDP adds;
one process sums it in one go. That order is the only difference, so the runs compute in
float64 (the `kedro` process's default dtype; the replicas take their model's), where
the difference stays near 1e-13 even after Adam amplifies a near-zero gradient's rounding
(tests/training/test_distributed.py measures and explains the float32 figure, 1.3e-4 on one
CPU). The bound, 1e-9, is 1,000 times that on any CPU and far below one step's change of the
loss (asserted). Each epoch is one step (limit_train_batches: 1), so the history's train
loss of every epoch is a step's loss.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import PARAMETERS, kedro, latest_version, make_project_copy, project_env
from duet_pipeline.data.synthetic import generate_ratings, write_ratings
from duet_pipeline.processes import free_port

TOLERANCE = 1e-9  # see the module docstring
STEPS = 4
RUN = ("dataset=ml-100k,methods=base,training.progress=false,training.batch_size=64,"
       "training.limit_train_batches=1")
# The `kedro` CLI with float64 as torch's default dtype: the model is built, trained and
# saved in float64.
FLOAT64_KEDRO = ("import sys, torch; torch.set_default_dtype(torch.float64); "
                 "from kedro.framework.cli import main; sys.argv[0] = 'kedro'; sys.exit(main())")
PIPELINES = "--pipelines=ingestion,feature_engineering,umn_training"
MODELS = Path("data/06_models/ml-100k/din/base_model.pkl")
HISTORY = Path("data/08_reporting/ml-100k/din/base_training_history.csv")


def node_project(root: Path) -> Path:
    project = make_project_copy(root)
    ratings = generate_ratings(num_users=40, num_items=300, num_rows=1_200, seed=3)
    write_ratings(ratings, project / "data" / "01_raw", "ml-100k", PARAMETERS["datasets"])
    return project


@dataclass
class Node:
    """A node's `kedro run`: its process (in its own group: killing the group kills its
    replicas, as a lost machine would) and the file its stderr goes to."""

    process: subprocess.Popen
    stderr: Path

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        self.process.wait(timeout=timeout)
        return self.process.returncode, self.stderr.read_text()

    def wait_for(self, text: str, timeout: float) -> bool:
        """Whether ``text`` appears in its stderr before it ends or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if text in self.stderr.read_text():
                return True
            time.sleep(0.2)
        return False


def start(project: Path, params: str) -> Node:
    """A float64 `kedro run` of ``project``, its output in files beside it."""
    env = {**project_env(project), "DUET_THREADS": "1"}
    stderr = project.parent / f"{project.name}.stderr"
    with (project.parent / f"{project.name}.stdout").open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen([sys.executable, "-c", FLOAT64_KEDRO, "run", PIPELINES, f"--params={RUN},{params}"],
                                   cwd=project, env=env, stdout=out, stderr=err, start_new_session=True)
    return Node(process, stderr)


def two_nodes(rendezvous: str, epochs: int) -> list[str]:
    """Each node's parameters; early stopping never cuts the ``epochs`` short."""
    common = (f"training.max_epochs={epochs},training.patience={epochs},training.distributed.nodes=2,"
              f"training.distributed.rendezvous={rendezvous}")
    return [f"{common},training.distributed.node_rank={rank}" for rank in (0, 1)]


def written_files(project: Path) -> list[Path]:
    return sorted(p for layer in (project / "data").iterdir() if layer.name != "01_raw"
                  for p in layer.rglob("*") if p.is_file())


def mlflow_runs(project: Path) -> int:
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute("select count(*) from runs").fetchone()[0]


def model_state(project: Path) -> dict[str, torch.Tensor]:
    bundle = pd.read_pickle(latest_version(project / MODELS))
    return bundle["state_dict"]


def test_two_nodes_train_as_one_process_and_only_node_0_writes(tmp_path: Path) -> None:
    first, second = node_project(tmp_path / "node0"), node_project(tmp_path / "node1")
    code, stderr = start(first, f"training.max_epochs={STEPS},training.patience={STEPS}").finish()
    assert code == 0, stderr[-3000:]
    single_history, single_state = pd.read_csv(latest_version(first / HISTORY)), model_state(first)

    nodes = [start(project, params) for project, params in zip((first, second), two_nodes(f"127.0.0.1:{free_port()}", STEPS))]
    outcomes = [node.finish() for node in nodes]
    assert all(code == 0 for code, _ in outcomes), "\n".join(err[-3000:] for _, err in outcomes)
    assert "joined rendezvous" in outcomes[1][1]  # node 1 trained its share

    assert len(list((first / MODELS).iterdir())) == 2  # the single run's version and node 0's
    history = pd.read_csv(latest_version(first / HISTORY))
    assert len(history) == len(single_history) == STEPS
    np.testing.assert_allclose(history["train_loss"], single_history["train_loss"], atol=TOLERANCE, rtol=0)
    assert abs(single_history["train_loss"][0] - single_history["train_loss"][1]) > 1e-4  # a step moves the loss
    state = model_state(first)
    assert all(t.dtype == torch.float64 for t in state.values() if t.is_floating_point())
    for name, tensor in single_state.items():
        np.testing.assert_allclose(state[name].numpy(), tensor.numpy(), atol=TOLERANCE, rtol=0, err_msg=name)
    assert written_files(second) == [] and mlflow_runs(second) == 0  # node 1 wrote nothing
    assert mlflow_runs(first) == 2


@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_node_fails_the_other_in_one_line_and_leaves_no_version(tmp_path: Path, killed: int) -> None:
    projects = node_project(tmp_path / "node0"), node_project(tmp_path / "node1")
    rendezvous = f"127.0.0.1:{free_port()}"
    nodes = [start(project, params) for project, params in zip(projects, two_nodes(rendezvous, epochs=100_000))]
    survivor = nodes[1 - killed]
    joined = nodes[killed].wait_for("joined rendezvous", timeout=240)
    time.sleep(2)  # into the training's steps
    os.killpg(nodes[killed].process.pid, signal.SIGKILL)
    lost_at = time.monotonic()
    code, stderr = survivor.finish(timeout=120)
    assert time.monotonic() - lost_at < 60
    assert joined and code != 0, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert rendezvous in errors[0] and f"lost node {killed} of 2" in errors[0], errors[0]
    if killed == 1:  # node 0, the writer, kept no version of the model it did not finish
        assert not (projects[0] / MODELS).exists() or not list((projects[0] / MODELS).iterdir())
    else:  # node 1 writes nothing, finished or not
        assert written_files(projects[1]) == []
    nodes[killed].process.wait()


def test_a_streaming_node_other_than_0_refuses_samples_it_would_keep_in_memory(tiny_ml100k: Path) -> None:
    """Node 1 keeps its outputs in memory, so it cannot stream the train samples its own data
    stages would have written: one line, before any stage, and nothing written."""
    result = kedro(tiny_ml100k, "run", PIPELINES, "--params=dataset=ml-100k,methods=base,training.streaming=true,"
                   "training.distributed.nodes=2,training.distributed.node_rank=1,"
                   "training.distributed.rendezvous=127.0.0.1:29400", check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr[-3000:]
    assert "training.distributed.node_rank = 1" in errors[0] and "train_samples@files" in errors[0], errors[0]
    assert written_files(tiny_ml100k) == []
