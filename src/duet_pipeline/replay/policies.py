"""Request policies, simulated on the stale-score triangle (PROTOCOL section 10).

Every device requests at step 1. Before each later step k, holding the head of step j,
a policy requests again when its urge ``urge[d, k, j]`` exceeds a threshold; one
simulation serves them all:

- ``always`` / ``never``: the threshold -inf / +inf (the ideal and the stale bound);
- ``every-k``: urge k - j, the clicks since the head (threshold K - 1/2: every K steps);
- ``random``: urge a uniform draw per (device, step), independent of the head;
- ``drift``: urge the distance between the current window and the head's (stale.py);
- ``learned``: urge the learned policy's probability that the head mis-ranks (learned.py).

A request budget b sets the threshold: the lowest whose request rate (requests over the
steps after step 1) stays within b, found by bisection. The threshold reads only what the
devices hold (their windows, scores and clicks), never whether a request would have paid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

POLICIES = ("always", "never", "every-k", "random", "drift", "learned")
# Policies with a threshold, set per budget; always and never have one rate each.
BUDGETED = ("every-k", "random", "drift", "learned")


@dataclass(frozen=True)
class Outcome:
    """One policy at one threshold over every device's stream."""

    held: np.ndarray  # (D, R): the step whose head scores each step
    requests: np.ndarray  # (D,): requests after step 1
    request_rate: float  # requests / steps after step 1

    def auc(self, scores: np.ndarray, valid: np.ndarray) -> float:
        """AUC over all (device, step) candidate sets, pooled (the project's ``auc``)."""
        chosen = held_scores(scores, self.held)[valid]
        labels = np.zeros_like(chosen)
        labels[:, 0] = 1
        return float(roc_auc_score(labels.ravel(), chosen.ravel()))


def held_scores(table: np.ndarray, held: np.ndarray) -> np.ndarray:
    """``table[d, k, held[d, k]]`` for every (d, k): what each step saw with the head it held."""
    devices, length = held.shape
    return table[np.arange(devices)[:, None], np.arange(length)[None, :], held]


def simulate(urge: np.ndarray, threshold: float, valid: np.ndarray) -> Outcome:
    """Replay every device at once: before step k it requests if ``urge[d, k, held] > threshold``."""
    devices, length = valid.shape
    rows = np.arange(devices)
    held = np.zeros((devices, length), dtype=np.int64)
    current = np.zeros(devices, dtype=np.int64)
    requests = np.zeros(devices, dtype=np.int64)
    for k in range(1, length):
        ask = (urge[rows, k, current] > threshold) & valid[:, k]
        current = np.where(ask, k, current)
        held[:, k] = current
        requests += ask
    later_steps = int(valid[:, 1:].sum())
    return Outcome(held, requests, float(requests.sum() / later_steps) if later_steps else 0.0)


def threshold_for_budget(urge: np.ndarray, valid: np.ndarray, budget: float, iterations: int = 60) -> float:
    """The lowest threshold whose request rate is at most ``budget`` (+inf for 0, -inf for 1)."""
    if budget >= 1:
        return -np.inf
    finite = urge[np.isfinite(urge)]
    if budget <= 0 or finite.size == 0:
        return np.inf
    low, high = float(finite.min()) - 1.0, float(finite.max())  # rate(low) = 1 > budget; rate(high) = 0
    for _ in range(iterations):
        middle = (low + high) / 2
        if simulate(urge, middle, valid).request_rate <= budget:
            high = middle
        else:
            low = middle
    # Every threshold from the lowest within budget up to the next urge value makes the same
    # decisions: take the middle of that plateau, so that a device computing its urge with
    # other float rounding (ONNX, another CPU) decides the same.
    above = finite[finite > high]
    return (high + float(above.min())) / 2 if above.size else high + 1.0


def every_k_urge(devices: int, length: int) -> np.ndarray:
    """(D, R, R): k - j, the steps since the held head."""
    steps = np.arange(length)
    return np.broadcast_to((steps[:, None] - steps[None, :]).astype(np.float64), (devices, length, length))


def random_urge(devices: int, length: int, seed: int) -> np.ndarray:
    """(D, R, R): one uniform draw per (device, step), the same whatever head is held."""
    draws = np.random.default_rng(seed).random((devices, length))
    return np.repeat(draws[:, :, None], length, axis=2)
