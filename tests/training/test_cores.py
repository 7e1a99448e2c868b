"""Sharing the cores between concurrent trainings (training/cores.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from duet_pipeline.training.cores import CoreShare


@pytest.fixture
def share_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DUET_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    yield tmp_path / "cores"
    torch.set_num_threads(threads)


def test_alone_a_training_takes_every_core_and_gives_back_its_threads(share_env):
    before = torch.get_num_threads()
    with CoreShare(share_env, cores=2) as cores:
        assert cores.adjust() == 2 and torch.get_num_threads() == 2
        assert [p.name for p in share_env.iterdir()] == [str(os.getpid())]
    assert list(share_env.iterdir()) == [] and torch.get_num_threads() == before


def test_beside_a_live_training_each_takes_its_share_and_dead_entries_are_dropped(share_env):
    share_env.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (share_env / str(other.pid)).touch()
        with CoreShare(share_env, cores=4) as cores:
            assert cores.adjust() == 2
            other.kill()
            other.wait()
            assert cores.adjust() == 4  # the other finished: the cores come back
            assert not (share_env / str(other.pid)).exists()
    finally:
        other.kill()


def test_more_trainings_than_cores_keep_one_thread_each(share_env):
    share_env.mkdir()
    (share_env / str(os.getppid())).touch()  # the parent shell: alive
    with CoreShare(share_env, cores=1) as cores:
        assert cores.adjust() == 1


@pytest.mark.parametrize("variable", ["DUET_THREADS", "OMP_NUM_THREADS"])
def test_a_thread_count_fixed_by_environment_wins_and_registers_nothing(share_env, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    with CoreShare(share_env, cores=2) as cores:
        assert cores.adjust() == 1
    assert not share_env.exists()


def test_a_bad_thread_count_names_the_variable(share_env, monkeypatch):
    monkeypatch.setenv("DUET_THREADS", "two")
    with pytest.raises(ValueError, match=r"DUET_THREADS = 'two': must be a whole number >= 1"):
        CoreShare(share_env)
