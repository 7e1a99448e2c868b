"""The stale-score triangle (all devices' step k in one pass) against a plain per-device loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from serving.test_heads import NUM_ITEMS, SEQ_LEN, model_with

from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.replay.stale import stale_scores
from duet_pipeline.replay.streams import Streams

pytestmark = pytest.mark.usefixtures("light_torch")

DEVICES, LENGTH, CANDIDATES = 5, 4, 6


def random_streams(seed: int = 0) -> Streams:
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randint(1, NUM_ITEMS + 1, (DEVICES, LENGTH, SEQ_LEN), generator=generator)
    windows[0, 0, :2] = 0  # a short window, left-padded
    candidates = torch.randint(1, NUM_ITEMS + 1, (DEVICES, LENGTH, CANDIDATES), generator=generator)
    return Streams(torch.arange(1, DEVICES + 1), windows, candidates, torch.full((DEVICES,), LENGTH))


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("head", ["duet+swa", "lhuc", "pepnet", "poso", "apg"])
def test_the_triangle_equals_one_device_one_step_one_head_at_a_time(head, backbone):
    model, streams = model_with(head, backbone), random_streams()
    stale = stale_scores(model, streams, batch_devices=2)  # batches that split the devices
    with torch.no_grad():
        for d in range(DEVICES):
            for k in range(LENGTH):
                for j in range(LENGTH):
                    if j > k:
                        assert np.isnan(stale.scores[d, k, j]).all()
                        continue
                    held = model.message(streams.windows[d, j].unsqueeze(0))
                    history = streams.windows[d, k].unsqueeze(0).expand(CANDIDATES, -1)
                    expected = model.score(history, streams.candidates[d, k], message={
                        name: t.expand(CANDIDATES, *t.shape[1:]) for name, t in held.items()},
                        row_of=torch.arange(CANDIDATES))
                    # float32 sums in another batch shape: a few ulps of the logits' size
                    np.testing.assert_allclose(stale.scores[d, k, j], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_drift_is_zero_for_a_window_and_itself_and_symmetric():
    model, streams = model_with("duet+swa", "din"), random_streams(1)
    drift = stale_scores(model, streams).drift
    np.testing.assert_allclose(np.diagonal(drift, axis1=1, axis2=2), 0, atol=1e-6)
    np.testing.assert_allclose(drift, drift.transpose(0, 2, 1), atol=1e-6)
