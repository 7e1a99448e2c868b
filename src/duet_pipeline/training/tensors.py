"""Sample frames -> tensors, once, before any training loop touches them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from duet_pipeline.features.samples import SAMPLE_COLUMNS, history_matrix


@dataclass
class SampleTensors:
    user: torch.Tensor  # (n,) int64
    history: torch.Tensor  # (n, L) int64
    target: torch.Tensor  # (n,) int64
    label: torch.Tensor  # (n,) float32

    def __len__(self) -> int:
        return len(self.label)

    def rows(self, index: torch.Tensor | slice) -> "SampleTensors":
        return SampleTensors(self.user[index], self.history[index], self.target[index], self.label[index])

    def for_users(self, users: torch.Tensor) -> "SampleTensors":
        return self.rows(torch.isin(self.user, users))


def to_tensors(samples: pd.DataFrame) -> SampleTensors:
    """Convert a samples frame (user_id, history, target_item, label) to tensors."""
    missing = set(SAMPLE_COLUMNS) - set(samples.columns)
    if missing:
        raise ValueError(f"samples frame lacks columns {sorted(missing)}")
    return SampleTensors(
        user=torch.tensor(samples["user_id"].to_numpy(np.int64)),
        history=torch.from_numpy(history_matrix(samples)),
        target=torch.tensor(samples["target_item"].to_numpy(np.int64)),
        label=torch.tensor(samples["label"].to_numpy(np.float32)),
    )


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
