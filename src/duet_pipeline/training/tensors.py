"""Stored samples -> model rows as tensors, once, before any training loop touches them."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from duet_pipeline.features.samples import SAMPLE_COLUMNS, list_matrix
from duet_pipeline.samples import SampleTensors


def to_tensors(samples: pd.DataFrame) -> SampleTensors:
    """Expand stored samples (one row per positive, PROTOCOL 2.7) to model rows: each
    positive, then its negatives, sharing its user and history."""
    compact = to_compact(samples)
    return expand(compact.users, compact.history, compact.targets, compact.negatives)


@dataclass
class CompactSamples:
    """Stored samples kept as they are stored (one row per positive), whose model rows are
    expanded a chunk at a time: validation for a streamed training, where the expanded
    rows (each history repeated 100 times) would not fit beside it at 25M interactions."""

    users: np.ndarray  # (n,)
    history: np.ndarray  # (n, L)
    targets: np.ndarray  # (n,)
    negatives: np.ndarray  # (n, K)

    @property
    def group(self) -> int:
        return self.negatives.shape[1] + 1

    def __len__(self) -> int:
        return len(self.targets) * self.group

    @property
    def user(self) -> torch.Tensor:
        return torch.from_numpy(np.repeat(self.users, self.group))

    @property
    def label(self) -> torch.Tensor:
        return torch.from_numpy(_labels(len(self.targets), self.group))

    def chunks(self, rows: int) -> Iterator[SampleTensors]:
        """The model rows in order, about ``rows`` at a time (whole positives)."""
        step = max(1, rows // self.group)
        for start in range(0, len(self.targets), step):
            part = slice(start, start + step)
            yield expand(self.users[part], self.history[part], self.targets[part], self.negatives[part])


def to_compact(samples: pd.DataFrame) -> CompactSamples:
    """Stored samples as :class:`CompactSamples` (no expansion)."""
    missing = set(SAMPLE_COLUMNS) - set(samples.columns)
    if missing:
        raise ValueError(f"samples frame lacks columns {sorted(missing)}")
    return CompactSamples(samples["user_id"].to_numpy(np.int64), list_matrix(samples, "history"),
                          samples["target_item"].to_numpy(np.int64), list_matrix(samples, "negatives"))


def expand(users: np.ndarray, history: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> SampleTensors:
    """Rows (user, history, item, label) for positives (n,), (n, L), (n,) and their
    negatives (n, K): n * (K + 1) rows, each positive followed by its K negatives."""
    group = negatives.shape[1] + 1
    items = np.concatenate([targets[:, None], negatives], axis=1)
    return SampleTensors(
        user=torch.from_numpy(np.repeat(users, group)),
        history=torch.from_numpy(np.repeat(history, group, axis=0)),
        target=torch.from_numpy(items.reshape(-1)),
        label=torch.from_numpy(_labels(len(targets), group)),
    )


def _labels(positives: int, group: int) -> np.ndarray:
    """1 for each positive, 0 for the negatives that follow it: (positives * group,)."""
    labels = np.zeros((positives, group), dtype=np.float32)
    labels[:, 0] = 1.0
    return labels.reshape(-1)


class RowsByUser:
    """Row numbers of each user's rows in a user column, found with one sort.

    ``rows(user)`` equals ``torch.nonzero(users == user).squeeze(1)`` (ascending row
    order) without scanning the whole column once per user.
    """

    def __init__(self, users: torch.Tensor) -> None:
        values = users.numpy()
        self._order = np.argsort(values, kind="stable")
        self._sorted = values[self._order]

    def __call__(self, user: int) -> torch.Tensor:
        start, end = np.searchsorted(self._sorted, [user, user + 1])
        return torch.from_numpy(self._order[start:end])
