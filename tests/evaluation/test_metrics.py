"""Tests for duet_pipeline.evaluation.metrics (PROTOCOL section 5).

AUC, UAUC and logloss are checked against scikit-learn; NDCG@k and HR@k against
hand-computed ranks, including a tie that must count against the positive.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from duet_pipeline.evaluation.metrics import (
    compute_metrics,
    logloss,
    positive_ranks,
    ranking_metrics,
    user_auc,
)

METRIC_KEYS = {
    "auc", "uauc", "logloss",
    "ndcg@5", "ndcg@10", "ndcg@20", "hr@5", "hr@10", "hr@20",
}


def single_positive_data(seed: int, n_users: int = 25, decimals: int = 1):
    """Users with one positive and a varying number of negatives; rounded scores tie often."""
    rng = np.random.default_rng(seed)
    users, labels, scores = [], [], []
    for user in rng.permutation(np.arange(100, 100 + n_users)):
        n_neg = int(rng.integers(1, 30))
        users += [user] * (n_neg + 1)
        labels += [1] + [0] * n_neg
        scores += list(np.round(rng.normal(size=n_neg + 1) + np.r_[0.7, np.zeros(n_neg)], decimals))
    order = rng.permutation(len(users))  # rows of a user are not contiguous
    return (
        np.asarray(users)[order],
        np.asarray(labels, dtype=np.int8)[order],
        np.asarray(scores)[order],
    )


def brute_force_rank(scores_of_user, labels_of_user) -> int:
    """1 + number of negatives scoring >= the positive (pessimistic ties)."""
    pos = [s for s, lab in zip(scores_of_user, labels_of_user) if lab == 1]
    assert len(pos) == 1
    return 1 + sum(1 for s, lab in zip(scores_of_user, labels_of_user) if lab == 0 and s >= pos[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_uauc_logloss_match_sklearn(seed):
    users, labels, scores = single_positive_data(seed)
    assert len(np.unique(scores)) < len(scores)  # the data really has ties
    metrics = compute_metrics(users, labels, scores)
    assert set(metrics) == METRIC_KEYS
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    per_user = [
        roc_auc_score(labels[users == u], scores[users == u]) for u in np.unique(users)
    ]
    assert metrics["uauc"] == pytest.approx(np.mean(per_user), abs=1e-12)
    probabilities = 1.0 / (1.0 + np.exp(-scores))
    assert metrics["logloss"] == pytest.approx(log_loss(labels, probabilities), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_ranking_metrics_match_brute_force(seed):
    users, labels, scores = single_positive_data(seed, decimals=0)  # many ties
    ranks = {
        u: brute_force_rank(scores[users == u].tolist(), labels[users == u].tolist())
        for u in np.unique(users)
    }
    metrics = compute_metrics(users, labels, scores)
    for k in (5, 10, 20):
        hits = [r <= k for r in ranks.values()]
        gains = [1.0 / math.log2(r + 1) if r <= k else 0.0 for r in ranks.values()]
        assert metrics[f"hr@{k}"] == pytest.approx(sum(hits) / len(hits))
        assert metrics[f"ndcg@{k}"] == pytest.approx(sum(gains) / len(gains))


def test_user_auc_with_several_positives_and_single_class_users():
    """UAUC = mean of per-user sklearn AUCs; users with one class only are skipped."""
    rng = np.random.default_rng(7)
    users = np.repeat([1, 2, 3, 4], [12, 9, 5, 6])
    labels = rng.integers(0, 2, size=len(users))
    labels[users == 3] = 0  # no positive: no AUC
    labels[users == 4] = 1  # no negative: no AUC
    labels[np.flatnonzero(users == 1)[:2]] = [0, 1]
    labels[np.flatnonzero(users == 2)[:2]] = [0, 1]
    scores = np.round(rng.normal(size=len(users)), 1)
    expected = np.mean(
        [roc_auc_score(labels[users == u], scores[users == u]) for u in (1, 2)]
    )
    assert user_auc(users, labels, scores) == pytest.approx(expected, abs=1e-12)


def test_hand_computed_ranks_with_pessimistic_tie():
    # user "a": one negative above and one tied with the positive -> rank 3
    # user "b": positive strictly best -> rank 1
    # user "c": six negatives above -> rank 7
    # user "d": 21 negatives above -> rank 22 (a miss even at 20)
    users = ["a"] * 5 + ["b"] * 3 + ["c"] * 8 + ["d"] * 23
    labels = [1, 0, 0, 0, 0] + [1, 0, 0] + [1] + [0] * 7 + [1] + [0] * 22
    scores = (
        [0.5, 0.9, 0.5, 0.1, 0.2]
        + [2.0, 1.0, 1.9]
        + [0.0] + [1.0] * 6 + [-1.0]
        + [0.0] + [0.5] * 21 + [-3.0]
    )
    users, labels, scores = np.asarray(users), np.asarray(labels), np.asarray(scores)
    ranks = positive_ranks(users, labels, scores)
    assert sorted(ranks.tolist()) == [1, 3, 7, 22]
    metrics = compute_metrics(users, labels, scores)
    assert metrics["hr@5"] == pytest.approx(2 / 4)
    assert metrics["hr@10"] == pytest.approx(3 / 4)
    assert metrics["hr@20"] == pytest.approx(3 / 4)
    # 1/log2(rank + 1): rank 1 -> 1, rank 3 -> 1/2, rank 7 -> 1/3.
    assert metrics["ndcg@5"] == pytest.approx((1 + 0.5) / 4)
    assert metrics["ndcg@10"] == pytest.approx((1 + 0.5 + 1 / 3) / 4)
    assert metrics["ndcg@20"] == pytest.approx((1 + 0.5 + 1 / 3) / 4)


def test_tie_counts_against_the_positive_whatever_the_row_order():
    # Positive tied with every negative: rank = 1 + number of negatives, in any order.
    for labels in ([1, 0, 0], [0, 1, 0], [0, 0, 1]):
        metrics = compute_metrics(np.zeros(3), np.asarray(labels), np.full(3, 0.25))
        assert metrics["hr@5"] == 1.0
        assert metrics["ndcg@5"] == pytest.approx(1 / math.log2(4))
        assert metrics["auc"] == pytest.approx(0.5)
    assert ranking_metrics(np.array([3]), cutoffs=(2, 3)) == {
        "ndcg@2": 0.0, "hr@2": 0.0, "ndcg@3": pytest.approx(0.5), "hr@3": 1.0,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_invariant_under_row_shuffles(seed):
    users, labels, scores = single_positive_data(10 + seed, decimals=0)
    reference = compute_metrics(users, labels, scores)
    order = np.random.default_rng(seed).permutation(len(users))
    shuffled = compute_metrics(users[order], labels[order], scores[order])
    assert shuffled.keys() == reference.keys()
    for key, value in reference.items():
        assert shuffled[key] == pytest.approx(value, abs=1e-12), key


def test_logloss_stable_for_large_logits():
    labels = np.array([1, 0, 1, 0, 1])
    logits = np.array([1000.0, -1000.0, -800.0, 900.0, 0.0])
    value = logloss(labels, logits)
    assert math.isfinite(value)
    # Per row: ~0, ~0, 800, 900, log 2.
    assert value == pytest.approx((800.0 + 900.0 + math.log(2.0)) / 5, rel=1e-12)
    metrics = compute_metrics(np.arange(5) // 5, np.array([1, 0, 0, 0, 0]), logits)
    assert math.isfinite(metrics["logloss"])


def test_two_positives_for_one_user_is_a_clear_error():
    users = np.array([1, 1, 1, 2, 2])
    labels = np.array([1, 1, 0, 1, 0])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="one positive"):
        compute_metrics(users, labels, scores)


def test_user_without_positive_is_a_clear_error():
    users = np.array([1, 1, 2, 2])
    labels = np.array([1, 0, 0, 0])
    with pytest.raises(ValueError, match="one positive"):
        compute_metrics(users, labels, np.array([0.1, 0.2, 0.3, 0.4]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise(bad):
    users, labels, scores = single_positive_data(0, n_users=3)
    scores = scores.copy()
    scores[1] = bad
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics(users, labels, scores)
