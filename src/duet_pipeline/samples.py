"""The model rows every layer passes around: the floor of the package.

Features write them, training and the methods read them, models and evaluation take them in
type hints. This module imports nothing of the project, so every layer may import it and no
import runs back up.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


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

    @staticmethod
    def concat(parts: list["SampleTensors"]) -> "SampleTensors":
        """The rows of ``parts``, one after the other."""
        return SampleTensors(*(torch.cat([getattr(part, name) for part in parts])
                               for name in ("user", "history", "target", "label")))

    def chunks(self, rows: int) -> Iterator["SampleTensors"]:
        """Consecutive slices of ``rows`` rows, for scoring."""
        for start in range(0, len(self), rows):
            yield self.rows(slice(start, start + rows))

    def to(self, device: torch.device) -> "SampleTensors":
        if self.user.device == device:
            return self
        return SampleTensors(self.user.to(device), self.history.to(device), self.target.to(device), self.label.to(device))

    def for_users(self, users: torch.Tensor) -> "SampleTensors":
        return self.rows(torch.isin(self.user, users))
