"""fit(): epoch reports, best-epoch selection in the metric's direction, early stopping."""
from __future__ import annotations

import pytest
import torch

from duet_pipeline.models.recommender import ModelConfig, Recommender
from duet_pipeline.parameters import ParameterError
from duet_pipeline.training import loop
from duet_pipeline.training.loop import evaluate, fit
from duet_pipeline.samples import SampleTensors

from conftest import backbone_options, training_config

ITEMS = 30


def learnable_samples(users: int, rows_per_user: int, seed: int) -> SampleTensors:
    """The positive is the item after the history's last one; negatives are random."""
    generator = torch.Generator().manual_seed(seed)
    n = users * rows_per_user
    user = torch.arange(users).repeat_interleave(rows_per_user)
    history = torch.randint(1, ITEMS + 1, (n, 5), generator=generator)
    target = torch.randint(1, ITEMS + 1, (n,), generator=generator)
    label = (torch.arange(n) % rows_per_user == 0).float()
    target[label > 0] = history[label > 0, -1] % ITEMS + 1
    return SampleTensors(user, history, target, label)


def tiny_model() -> Recommender:
    torch.manual_seed(0)
    return Recommender(ModelConfig(num_items=ITEMS, max_seq_len=5, backbone="din", dim=8,
                                   backbone_options=backbone_options("din")))


@pytest.mark.usefixtures("light_torch")
@pytest.mark.parametrize("metric", ["auc", "logloss"])
def test_fit_keeps_the_validation_best_epoch_of_a_model_that_learns(metric: str) -> None:
    train, validation = learnable_samples(200, 5, 0), learnable_samples(40, 10, 1)
    model = tiny_model()
    reported = []
    config = training_config(max_epochs=8, patience=8, batch_size=100, learning_rate=0.01,
                             selection_metric=metric, progress=False)
    result = fit(model, train, validation, config, on_epoch_end=reported.append)
    history = result.history
    assert [r["epoch"] for r in reported] == history["epoch"].tolist()
    curve = history[f"val_{metric}"]
    best = curve.idxmin() if metric == "logloss" else curve.idxmax()
    assert result.best_epoch == history["epoch"][best]
    # The model learns, so the first epoch is not the best: "keeps the best" differs from "keeps the first".
    assert result.best_epoch > 1
    # The returned model holds the kept epoch's weights, not the last epoch's.
    assert evaluate(model, validation)[metric] == pytest.approx(curve[best], abs=1e-6)


SCRIPT = [0.50, 0.40, 0.45, 0.30, 0.35, 0.60, 0.70, 0.20]  # one validation value per epoch


@pytest.mark.usefixtures("light_torch")
@pytest.mark.parametrize("metric,best_epoch,epochs_run", [("logloss", 4, 7), ("auc", 1, 4)])
def test_selection_follows_the_metric_direction_and_stops_patience_epochs_after_the_best(
    monkeypatch: pytest.MonkeyPatch, metric: str, best_epoch: int, epochs_run: int
) -> None:
    """Scripted validation values: logloss keeps the minimum, AUC the maximum, and the
    run stops exactly `patience` epochs after the last improvement."""
    values = iter(SCRIPT)

    def scripted(model, data, batch_size):
        value = next(values)
        return {name: value for name in ("auc", "uauc", "logloss")}

    monkeypatch.setattr(loop, "evaluate", scripted)
    train = learnable_samples(20, 5, 0)
    config = training_config(max_epochs=len(SCRIPT), patience=3, batch_size=50, selection_metric=metric, progress=False)
    result = fit(tiny_model(), train, train, config)
    assert result.best_epoch == best_epoch
    assert len(result.history) == epochs_run


def test_unknown_selection_metric_names_the_declared_ones() -> None:
    with pytest.raises(ValueError, match=r"training\.selection_metric = 'precision'.*ndcg@10.*logloss"):
        training_config(selection_metric="precision")


@pytest.mark.parametrize("overrides,message", [
    ({"batch_size": 2, "distributed": {"processes": 3}},
     "parameter training.distributed = {'processes': 3, 'nodes': 1, 'node_rank': 0, 'rendezvous': None, "
     "'timeout_s': 600}: Value error, nodes x processes = 3 is more than training.batch_size = 2"),
    ({"batch_size": 4, "distributed": {"processes": 2, "nodes": 3, "rendezvous": "127.0.0.1:29400"}},
     "parameter training.distributed = {'processes': 2, 'nodes': 3, 'node_rank': 0, 'rendezvous': '127.0.0.1:29400', "
     "'timeout_s': 600}: Value error, nodes x processes = 6 is more than training.batch_size = 4"),
    ({"distributed": {"nodes": 2}},
     "parameter training.distributed.rendezvous = None: Value error, nodes = 2 needs rendezvous: host:port"),
    ({"distributed": {"nodes": 2, "rendezvous": "10.0.0.1"}},
     "parameter training.distributed.rendezvous = '10.0.0.1': Value error, must be host:port"),
    ({"distributed": {"nodes": 2, "rendezvous": "10.0.0.1:70000"}},
     "parameter training.distributed.rendezvous = '10.0.0.1:70000': Value error, must be host:port"),
    ({"distributed": {"nodes": 2, "node_rank": 2, "rendezvous": "10.0.0.1:29400"}},
     "parameter training.distributed.node_rank = 2: Value error, node_rank = 2 with nodes = 2: allowed 0 to 1"),
    ({"distributed": {"nodes": 0}},
     "parameter training.distributed.nodes = 0: Input should be greater than or equal to 1"),
    ({"distributed": {"timeout_s": 1}},
     "parameter training.distributed.timeout_s = 1: Input should be greater than or equal to 10"),
    ({"shuffle": "rows", "streaming": True},
     "parameter training.streaming = True: Value error, streaming = true shuffles row groups"),
])
def test_training_parameters_that_cannot_work_together_fail_in_one_line(overrides, message) -> None:
    with pytest.raises(ParameterError) as raised:
        training_config(**overrides)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
