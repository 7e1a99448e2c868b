"""Every step scored with every head its device could hold then.

At step k a device holds the head of its last request, made at some step j <= k (from the
window it had then). ``StaleScores.scores[d, k, j]`` are step k's candidate scores with the
head of step j's window: the triangle j <= k holds every outcome of every policy, so a
policy is a choice of j per (d, k) and costs a lookup. Computing it is one pass per step k:
all devices' step k at once, the backbone once and the head once per held message
(``Recommender.score_messages``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from duet_pipeline.methods.messaging import messages, payload_bytes
from duet_pipeline.models.recommender import Recommender

from .streams import Streams


@dataclass(frozen=True)
class StaleScores:
    """The triangle of outcomes of one model on one set of streams."""

    scores: np.ndarray  # (D, R, R, C) float32: step k's candidates with step j's head; NaN for j > k
    set_auc: np.ndarray  # (D, R, R): the AUC of each such candidate set (the click against its negatives)
    drift: np.ndarray  # (D, R, R): 1 - cosine of the mean item embeddings of windows k and j
    payload_bytes: int  # what one request receives (float32)
    valid: np.ndarray  # (D, R) bool


def step_messages(model: Recommender, streams: Streams, batch: int) -> dict[str, torch.Tensor]:
    """The message each step's window gets: (D, R, ...) per tensor."""
    flat = streams.windows.reshape(-1, streams.windows.shape[-1])
    sent = messages(model, flat, batch)
    return {name: t.reshape(streams.devices, streams.length, *t.shape[1:]) for name, t in sent.items()}


def candidate_set_auc(scores: np.ndarray) -> np.ndarray:
    """AUC of each candidate set (last axis, the click first): the share of negatives
    scored below the click, ties counted half (as sklearn's roc_auc_score on one set)."""
    positive = scores[..., :1]
    negatives = scores[..., 1:]
    below = (negatives < positive).sum(axis=-1) + 0.5 * (negatives == positive).sum(axis=-1)
    return np.where(np.isnan(scores[..., 0]), np.nan, below / negatives.shape[-1])


def window_drift(model: Recommender, streams: Streams) -> np.ndarray:
    """(D, R, R): 1 - cos(mean embedding of window k, of window j), from the item table the
    device holds; 0 where the windows' mean directions agree."""
    with torch.inference_mode():
        emb = model.items(streams.windows)  # (D, R, L, d)
        mask = (streams.windows > 0).unsqueeze(-1).float()
        mean = (emb * mask).sum(dim=2) / mask.sum(dim=2).clamp(min=1)
        unit = torch.nn.functional.normalize(mean, dim=-1)
        return (1 - unit @ unit.transpose(1, 2)).numpy()


def stale_scores(model: Recommender, streams: Streams, batch_devices: int = 1024) -> StaleScores:
    """Score every step k of every device with the heads of all its steps j <= k."""
    model = model.eval()
    devices, length, width = streams.devices, streams.length, streams.candidates.shape[-1]
    scores = np.full((devices, length, length, width), np.nan, dtype=np.float32)
    with torch.inference_mode():
        sent = step_messages(model, streams, batch_devices)
        for start in range(0, devices, batch_devices):
            part = slice(start, min(start + batch_devices, devices))
            count = part.stop - part.start
            row_of = torch.arange(count).repeat_interleave(width)
            for k in range(length):
                held = [{name: t[part, j] for name, t in sent.items()} for j in range(k + 1)]
                scored = model.score_messages(streams.windows[part, k], streams.candidates[part, k].reshape(-1), row_of,
                                              held)
                scores[part, k, : k + 1] = torch.stack(scored).reshape(k + 1, count, width).transpose(0, 1).numpy()
    one = {name: t[0, 0].unsqueeze(0) for name, t in sent.items()}
    return StaleScores(scores, candidate_set_auc(scores), window_drift(model, streams), payload_bytes(one),
                       streams.valid())
