"""A device deciding alone (replay/device.py: numpy, ONNX Runtime, one step at a time) makes
the decisions of the batched simulation, and scores what it would have scored in it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from replay.test_stale import CANDIDATES, DEVICES, LENGTH, random_streams
from serving.test_heads import model_with

from duet_pipeline.replay.device import DevicePolicy, seen_auc
from duet_pipeline.replay.evaluate import urges
from duet_pipeline.replay.learned import LearnedPolicyParams, export_policy, train_policy
from duet_pipeline.replay.policies import random_urge, simulate, threshold_for_budget
from duet_pipeline.replay.stale import stale_scores
from duet_pipeline.project import load_parameters
from duet_pipeline.replay.evaluate import ReplayParams

pytestmark = pytest.mark.usefixtures("light_torch")


@pytest.mark.parametrize("policy", ["always", "never", "every-k", "random", "drift", "learned"])
def test_a_device_alone_decides_as_the_batched_replay(policy):
    model, streams = model_with("lhuc", "din"), random_streams(4)
    stale = stale_scores(model, streams)
    params = ReplayParams.from_params({**load_parameters()["replay"], "policies": [policy]})
    learned = train_policy(stale_scores(model, random_streams(5)), LearnedPolicyParams(hidden=4, epochs=30,
                                                                                      learning_rate=0.05), seed=0)
    urge = urges(stale, params, learned.model).get(policy, np.zeros_like(stale.drift))
    threshold = {"always": -np.inf, "never": np.inf}.get(policy)
    if threshold is None:
        threshold = threshold_for_budget(urge, stale.valid, 0.4)
    expected = simulate(urge, threshold, stale.valid).held
    draws = random_urge(DEVICES, LENGTH, params.seed)[:, :, 0]
    table = model.items.weight.detach().numpy()
    onnx = export_policy(learned.model) if policy == "learned" else None
    for d in range(DEVICES):
        device = DevicePolicy(policy, threshold, table, LENGTH, onnx, draws[d])
        windows, candidates = streams.windows[d].numpy(), streams.candidates[d]
        held, seen = 0, []
        with torch.no_grad():
            message = model.message(streams.windows[d, :1])
            for k in range(LENGTH):
                if k and device.requests(k, held, windows[k], windows[held], seen):
                    held, seen = k, []
                    message = model.message(streams.windows[d, k : k + 1])
                assert held == expected[d, k], (d, k)
                scores = model.score(streams.windows[d, k : k + 1].expand(CANDIDATES, -1), candidates[k],
                                     torch.arange(CANDIDATES) * 0, message).numpy()
                np.testing.assert_allclose(scores, stale.scores[d, k, held], rtol=1e-5, atol=1e-5)
                seen.append(seen_auc(scores))
