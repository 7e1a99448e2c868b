"""The learned request policy: its features as a device computes them, its training, its ONNX export."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from duet_pipeline.replay.learned import (FEATURES, LearnedPolicyParams, decision_features, decision_labels,
                                          decision_table, export_policy, policy_urge, train_policy)
from duet_pipeline.replay.stale import StaleScores, candidate_set_auc

pytestmark = pytest.mark.usefixtures("light_torch")
DEVICES, LENGTH = 40, 6


def synthetic_stale(seed: int = 0) -> StaleScores:
    """Heads that go stale with drift: a held head's scores get noisier as its window drifts."""
    rng = np.random.default_rng(seed)
    drift = rng.random((DEVICES, LENGTH, LENGTH))
    drift = (drift + drift.transpose(0, 2, 1)) / 2
    drift[:, np.arange(LENGTH), np.arange(LENGTH)] = 0
    scores = np.full((DEVICES, LENGTH, LENGTH, 20), np.nan, dtype=np.float32)
    for k in range(LENGTH):
        for j in range(k + 1):
            base = rng.normal(size=(DEVICES, 20))
            base[:, 0] += 2.0 - 3.0 * drift[:, k, j]  # the click ranks worse the further the drift
            scores[:, k, j] = base
    valid = np.ones((DEVICES, LENGTH), dtype=bool)
    return StaleScores(scores, candidate_set_auc(scores), drift, 64, valid)


def test_the_table_is_what_each_device_computes_from_its_own_view():
    stale = synthetic_stale()
    table = decision_table(stale)
    for d, k, j in [(0, 1, 0), (3, 5, 1), (7, 4, 3), (9, 5, 0)]:
        seen = np.full((1, LENGTH), np.nan)
        seen[0, : k - j] = [stale.set_auc[d, i, j] for i in range(j, k)]  # the sets the head scored since
        expected = decision_features(stale.drift[d : d + 1, k, j], np.array([k - j], float), seen, LENGTH)[0]
        np.testing.assert_allclose(table[d, k, j], expected)
        assert expected[FEATURES.index("last_seen_auc")] == pytest.approx(stale.set_auc[d, k - 1, j])
        assert expected[FEATURES.index("min_seen_auc")] == pytest.approx(min(stale.set_auc[d, j:k, j]))
    assert np.isnan(table[:, 2, 2]).all() and np.isnan(table[:, 1, 3]).all()  # no decision there


def test_labels_mark_a_head_that_ranks_the_click_below_a_fresh_one():
    stale = synthetic_stale()
    labels = decision_labels(stale)
    d, k, j = 2, 4, 1
    assert labels[d, k, j] == float(stale.set_auc[d, k, j] < stale.set_auc[d, k, k])


def test_the_policy_learns_when_a_stale_head_mis_ranks():
    train, test = synthetic_stale(0), synthetic_stale(1)
    policy = train_policy(train, LearnedPolicyParams(hidden=8, epochs=300, learning_rate=0.02), seed=0)
    urge, labels = policy_urge(policy.model, test), decision_labels(test)
    decided = ~np.isnan(urge)
    assert roc_auc_score(labels[decided], urge[decided]) > 0.6  # drift predicts a mis-ranking here
    assert policy.examples == DEVICES * LENGTH * (LENGTH - 1) // 2


def test_the_onnx_policy_decides_as_pytorch():
    onnxruntime = pytest.importorskip("onnxruntime")
    policy = train_policy(synthetic_stale(), LearnedPolicyParams(hidden=8, epochs=20, learning_rate=0.02), seed=0)
    session = onnxruntime.InferenceSession(export_policy(policy.model), providers=["CPUExecutionProvider"])
    features = decision_table(synthetic_stale(2)).reshape(-1, len(FEATURES))
    features = features[np.isfinite(features).all(axis=1)]
    got = session.run(["request_probability"], {"features": features})[0]
    with torch.no_grad():
        expected = policy.model(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
