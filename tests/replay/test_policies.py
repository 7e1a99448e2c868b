"""Request policies on the stale-score triangle, against plain per-device loops."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from duet_pipeline.parameters import ParameterError
from duet_pipeline.project import load_parameters
from duet_pipeline.replay.evaluate import ReplayParams
from duet_pipeline.replay.policies import every_k_urge, random_urge, simulate, threshold_for_budget
from duet_pipeline.replay.stale import candidate_set_auc

DEVICES, LENGTH, CANDIDATES = 30, 7, 9


def reference_simulation(urge, threshold, valid):
    """One device at a time, one step at a time, as written in PROTOCOL section 10."""
    held = np.zeros(valid.shape, dtype=int)
    requests = np.zeros(len(valid), dtype=int)
    for d in range(len(valid)):
        current = 0
        for k in range(1, valid.shape[1]):
            if valid[d, k] and urge[d, k, current] > threshold:
                current = k
                requests[d] += 1
            held[d, k] = current
    return held, requests


@pytest.fixture
def tables():
    rng = np.random.default_rng(0)
    urge = rng.random((DEVICES, LENGTH, LENGTH))
    valid = np.arange(LENGTH)[None, :] < rng.integers(1, LENGTH + 1, size=DEVICES)[:, None]
    scores = rng.normal(size=(DEVICES, LENGTH, LENGTH, CANDIDATES)).astype(np.float32)
    return urge, valid, scores


@pytest.mark.parametrize("threshold", [-np.inf, 0.3, 0.7, 0.95, np.inf])
def test_simulation_equals_a_per_device_loop(tables, threshold):
    urge, valid, _ = tables
    outcome = simulate(urge, threshold, valid)
    held, requests = reference_simulation(urge, threshold, valid)
    np.testing.assert_array_equal(outcome.held, held)
    np.testing.assert_array_equal(outcome.requests, requests)
    assert outcome.request_rate == pytest.approx(requests.sum() / valid[:, 1:].sum())


def test_always_is_the_fresh_head_and_never_the_first(tables):
    urge, valid, _ = tables
    always, never = simulate(urge, -np.inf, valid), simulate(urge, np.inf, valid)
    steps = np.broadcast_to(np.arange(LENGTH), valid.shape)
    np.testing.assert_array_equal(always.held[valid], steps[valid])
    assert always.request_rate == 1.0 and never.request_rate == 0.0
    assert (never.held == 0).all()


@pytest.mark.parametrize("budget", [0.0, 0.05, 0.1, 0.2, 0.5, 1.0])
def test_a_budget_sets_the_lowest_threshold_within_it(tables, budget):
    urge, valid, _ = tables
    threshold = threshold_for_budget(urge, valid, budget)
    rate = simulate(urge, threshold, valid).request_rate
    assert rate <= budget + 1e-12
    if 0 < budget < 1:  # below the lowest urge value the threshold clears, the budget is exceeded
        lowest = urge[urge <= threshold].max()
        assert simulate(urge, lowest - 1e-9, valid).request_rate > budget
        assert simulate(urge, lowest, valid).request_rate == rate  # the threshold sits on that plateau


def test_every_k_requests_every_k_steps():
    valid = np.ones((2, 10), dtype=bool)
    held = simulate(every_k_urge(2, 10), 3 - 0.5, valid).held
    np.testing.assert_array_equal(held[0], [0, 0, 0, 3, 3, 3, 6, 6, 6, 9])


def test_random_draws_one_value_per_step_whatever_the_head():
    urge = random_urge(4, 5, seed=1)
    assert (urge == urge[:, :, :1]).all() and not (urge == urge[:1, :1, :1]).all()


def test_pooled_auc_and_set_auc_equal_sklearn(tables):
    urge, valid, scores = tables
    outcome = simulate(urge, 0.6, valid)
    chosen, labels = [], []
    for d in range(DEVICES):
        for k in range(LENGTH):
            if valid[d, k]:
                chosen += list(scores[d, k, outcome.held[d, k]])
                labels += [1] + [0] * (CANDIDATES - 1)
    assert outcome.auc(scores, valid) == pytest.approx(roc_auc_score(labels, chosen), abs=1e-12)
    sets = candidate_set_auc(scores)
    for d, k, j in [(0, 0, 0), (3, 4, 2), (7, 6, 6)]:
        assert sets[d, k, j] == pytest.approx(roc_auc_score([1] + [0] * (CANDIDATES - 1), scores[d, k, j]))


def test_ties_count_half_in_a_set_auc():
    assert candidate_set_auc(np.array([[1.0, 1.0, 0.0, 2.0]]))[0] == pytest.approx(0.5)


@pytest.mark.parametrize("change, message", [
    ({"budgets": [0.1, 1.5]}, r"replay.budgets = \[0.1, 1.5\]: .*budgets are request rates in \[0, 1\]; got \[1.5\]"),
    ({"policies": ["always", "psychic"]}, r"replay.policies.1 = 'psychic': Input should be 'always', 'never'"),
    ({"policies": ["always", "always"]}, r"replay.policies = .*a policy is listed twice"),
    ({"policies": []}, r"replay.policies = \[\]"),
])
def test_bad_replay_parameters_fail_naming_the_parameter(change, message):
    with pytest.raises(ParameterError, match=message):
        ReplayParams.from_params({**load_parameters()["replay"], **change})

