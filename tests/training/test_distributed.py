"""training.distributed.processes: 2 DDP replicas train exactly as one process."""
from __future__ import annotations

import numpy as np

from duet_pipeline.training.loop import fit

from conftest import training_config
from training.test_loop import learnable_samples, tiny_model


def test_two_processes_give_the_single_process_loss_trajectory(monkeypatch) -> None:
    """Same global batch of 16 rows, same seed: the first 50 steps' losses agree to 1e-5,
    and the kept model is the same. The last batch is one row, so one replica's share of
    it is empty: it must still join the gradient all-reduce and step as the other does."""
    monkeypatch.setenv("DUET_THREADS", "1")  # one thread per process, also in the spawned replicas
    train, validation = learnable_samples(200, 5, 0).rows(slice(0, 62 * 16 + 1)), learnable_samples(20, 5, 1)
    results = {}
    for processes in (1, 2):
        config = training_config(batch_size=16, max_epochs=1, progress=False, distributed={"processes": processes})
        results[processes] = fit(tiny_model(), train, validation, config)
    single, double = results[1], results[2]
    assert len(single.step_losses) == len(double.step_losses) == 63
    np.testing.assert_allclose(double.step_losses, single.step_losses, atol=1e-5, rtol=0)
    assert single.step_losses[0] != single.step_losses[49]  # the model trained
    for name, tensor in single.best_state.items():
        np.testing.assert_allclose(double.best_state[name].numpy(), tensor.numpy(), atol=1e-4, rtol=0)
