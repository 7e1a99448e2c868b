"""What every personalisation method takes and returns."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from duet_pipeline.training.tensors import SampleTensors


@dataclass
class Devices:
    """The simulated devices: one per user, with its candidates and its own past rows.

    ``candidates`` are the rows to score (test: 1 positive + 99 negatives per user,
    all sharing the device's current history window); ``own_rows`` are the device's
    training rows, which only on-device fine-tuning reads (None where unused).
    """

    candidates: SampleTensors
    own_rows: SampleTensors | None = None

    def users(self) -> torch.Tensor:
        return torch.unique(self.candidates.user)

    def current_histories(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, history) with each device's current window (its first candidate row's)."""
        users, first = np.unique(self.candidates.user.numpy(), return_index=True)
        return torch.from_numpy(users), self.candidates.history[torch.from_numpy(first)]


@dataclass
class Personalization:
    scores: np.ndarray  # one logit per candidate row, in row order
    report: dict[str, float] = field(default_factory=dict)


def latency_percentiles(call: Callable[[], object], repeats: int) -> dict[str, float]:
    """p50 and p99 wall time of ``call`` in milliseconds over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
