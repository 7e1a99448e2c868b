"""A device's request policy as the device runs it: numpy and ONNX Runtime, one device,
one decision at a time, from what the device holds (its item table, its windows, the
scores it has seen). The device simulator replays devices with it over HTTP; the tests
check that it decides as the batched simulation (policies.py) does.
"""
from __future__ import annotations

import numpy as np

from .learned import decision_features
from .stale import candidate_set_auc


def mean_direction(item_table: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The unit mean embedding of a window's items (0 is padding)."""
    items = window[window > 0]
    mean = item_table[items].mean(axis=0) if len(items) else np.zeros(item_table.shape[1], item_table.dtype)
    norm = np.linalg.norm(mean)
    return mean / max(norm, 1e-12)


class DevicePolicy:
    """``policy`` at ``threshold`` on one device (``draws``: the random policy's per-step
    draws of this device; ``onnx_policy``: the learned policy's ONNX bytes)."""

    def __init__(self, policy: str, threshold: float, item_table: np.ndarray, length: int,
                 onnx_policy: bytes | None = None, draws: np.ndarray | None = None) -> None:
        self.policy, self.threshold, self.length = policy, threshold, length
        self.item_table = item_table
        self.draws = draws
        self.session = None
        if policy == "learned":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(onnx_policy, options, providers=["CPUExecutionProvider"])

    def drift(self, window: np.ndarray, head_window: np.ndarray) -> float:
        return float(1 - mean_direction(self.item_table, window) @ mean_direction(self.item_table, head_window))

    def urge(self, step: int, held_step: int, window: np.ndarray, head_window: np.ndarray, seen: list[float]) -> float:
        """The policy's urge to request before ``step``, holding the head of ``held_step``;
        ``seen``: the AUC of each candidate set the held head has scored since."""
        if self.policy == "always":
            return np.inf
        if self.policy == "never":
            return -np.inf
        if self.policy == "every-k":
            return float(step - held_step)
        if self.policy == "random":
            return float(self.draws[step])
        drift = self.drift(window, head_window)
        if self.policy == "drift":
            return drift
        padded = np.full((1, self.length), np.nan)
        padded[0, : len(seen)] = seen
        features = decision_features(np.array([drift]), np.array([float(step - held_step)]), padded, self.length)
        return float(self.session.run(["request_probability"], {"features": features})[0][0])

    def requests(self, step: int, held_step: int, window: np.ndarray, head_window: np.ndarray,
                 seen: list[float]) -> bool:
        return self.urge(step, held_step, window, head_window, seen) > self.threshold


def seen_auc(scores: np.ndarray) -> float:
    """What a device learns from a step it scored: the AUC of its candidate set (the click first)."""
    return float(candidate_set_auc(np.asarray(scores, dtype=np.float64)[None])[0])
