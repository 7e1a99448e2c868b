"""fit(): epoch reports, best-epoch selection and early stopping on a tiny model."""
from __future__ import annotations

import pytest
import torch

from duet_pipeline.models.recommender import ModelConfig, Recommender
from duet_pipeline.training.loop import TrainingConfig, evaluate, fit
from duet_pipeline.training.tensors import SampleTensors


def random_samples(users: int, rows_per_user: int, items: int, seed: int) -> SampleTensors:
    generator = torch.Generator().manual_seed(seed)
    n = users * rows_per_user
    user = torch.arange(users).repeat_interleave(rows_per_user)
    history = torch.randint(1, items + 1, (n, 5), generator=generator)
    target = torch.randint(1, items + 1, (n,), generator=generator)
    # A learnable signal: the positive is the item after the last one in the history.
    label = (torch.arange(n) % rows_per_user == 0).float()
    target[label > 0] = history[label > 0, -1] % items + 1
    return SampleTensors(user, history, target, label)


@pytest.mark.usefixtures("light_torch")
def test_fit_reports_every_epoch_and_keeps_the_best() -> None:
    train, validation = random_samples(60, 5, 30, 0), random_samples(20, 10, 30, 1)
    model = Recommender(ModelConfig(num_items=30, max_seq_len=5, backbone="din", dim=8))
    reported = []
    config = TrainingConfig(max_epochs=6, patience=2, batch_size=64, progress=False)
    result = fit(model, train, validation, config, on_epoch_end=reported.append)
    assert [r["epoch"] for r in reported] == result.history["epoch"].tolist()
    assert [r["val_auc"] for r in reported] == result.history["val_auc"].tolist()
    best = result.history["val_auc"].idxmax()
    assert result.best_epoch == result.history["epoch"][best]
    # The returned model holds the kept epoch's weights, not the last epoch's.
    assert evaluate(model, validation)["auc"] == pytest.approx(result.history["val_auc"][best], abs=1e-6)
    stopped_early = len(result.history) < config.max_epochs
    if stopped_early:  # it stops exactly `patience` epochs after the best one
        assert len(result.history) == result.best_epoch + config.patience
