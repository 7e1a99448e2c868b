"""training.distributed.processes: 2 DDP replicas train exactly as one process.

The two trainings compute the same sums in a different order: each replica sums its half
of a batch's gradient and DDP adds the halves. That order is the only difference, so the
test runs in float64, where one rounding is 2**-53 of a value instead of float32's 2**-24:
2**29 (about 5e8) times finer. In float32 the two trajectories drifted up to 1.3e-4 apart
over 63 Adam steps on one AMD EPYC CPU and stayed under 1e-4 on an Intel one: Adam divides
each gradient by its running scale, so a rounding difference in a near-zero gradient becomes
a step-sized one, and 63 steps compound it. The same amplification in float64 leaves about
1.3e-4 / 5e8 ~ 3e-13; the bound below, 1e-9, is more than 1,000 times that on any CPU, and
1e5 times below what one step changes (the loss moves by more than 1e-4 from step to step,
asserted below), so a replica that skipped a step or a half gradient counted twice fails it.
"""
from __future__ import annotations

import numpy as np
import torch

from duet_pipeline.training.loop import fit

from conftest import training_config
from training.test_loop import learnable_samples, tiny_model

TOLERANCE = 1e-9  # see the module docstring


def test_two_processes_give_the_single_process_loss_trajectory(monkeypatch) -> None:
    """Same global batch of 16 rows, same seed: every step's loss and the kept model agree.
    The last batch is one row, so one replica's share of it is empty: it must still join the
    gradient all-reduce and step as the other does."""
    monkeypatch.setenv("DUET_THREADS", "1")  # one thread per process, also in the spawned replicas
    train, validation = learnable_samples(200, 5, 0).rows(slice(0, 62 * 16 + 1)), learnable_samples(20, 5, 1)
    results = {}
    for processes in (1, 2):
        config = training_config(batch_size=16, max_epochs=1, progress=False, distributed={"processes": processes})
        results[processes] = fit(tiny_model().double(), train, validation, config)
    single, double = results[1], results[2]
    assert all(t.dtype == torch.float64 for t in single.best_state.values() if t.is_floating_point())
    assert len(single.step_losses) == len(double.step_losses) == 63
    np.testing.assert_allclose(double.step_losses, single.step_losses, atol=TOLERANCE, rtol=0)
    assert abs(single.step_losses[0] - single.step_losses[1]) > 1e-4  # one step moves the loss
    assert single.step_losses[0] != single.step_losses[49]  # the model trained
    for name, tensor in single.best_state.items():
        np.testing.assert_allclose(double.best_state[name].numpy(), tensor.numpy(), atol=TOLERANCE, rtol=0)
