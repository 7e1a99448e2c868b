"""The replayed clicks of every device, step by step (PROTOCOL section 10).

The replay split's ``test`` samples hold each device's R replayed clicks in click order,
and ``policy`` samples the last clicks of its train period; each stored row is a step:
its window (the clicks before it, earlier replayed ones included) and its candidates (the
click and its negatives). Devices with fewer steps (a short train period) are padded at
the end; ``steps`` says how many are real.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from duet_pipeline.features.samples import list_matrix


@dataclass(frozen=True)
class Streams:
    """Every device's stream: ``windows[d, k]`` and ``candidates[d, k]`` (the clicked item first)."""

    users: torch.Tensor  # (D,) int64
    windows: torch.Tensor  # (D, R, L) int64
    candidates: torch.Tensor  # (D, R, C) int64; column 0 is the clicked item
    steps: torch.Tensor  # (D,) int64: real steps, a prefix of the R

    @property
    def devices(self) -> int:
        return len(self.users)

    @property
    def length(self) -> int:
        return self.windows.shape[1]

    def valid(self) -> np.ndarray:
        """(D, R) bool: which steps are real."""
        return np.arange(self.length)[None, :] < self.steps.numpy()[:, None]

    def device(self, index: int) -> "Streams":
        keep = slice(index, index + 1)
        return Streams(self.users[keep], self.windows[keep], self.candidates[keep], self.steps[keep])


def streams_from_samples(samples: pd.DataFrame) -> Streams:
    """Stored samples (rows of one user in click order, users in any order) as streams."""
    if len(samples) == 0:
        raise ValueError("no replayed clicks: the samples are empty (was the replay split built?)")
    order = np.argsort(samples["user_id"].to_numpy(), kind="stable")  # a user's rows keep their order
    users = samples["user_id"].to_numpy(np.int64)[order]
    history = list_matrix(samples, "history")[order]
    candidates = np.concatenate([samples["target_item"].to_numpy(np.int64)[order, None],
                                 list_matrix(samples, "negatives")[order]], axis=1)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    step = np.arange(len(users)) - np.repeat(starts, counts)
    device = np.repeat(np.arange(len(starts)), counts)
    length = int(counts.max())
    windows = np.zeros((len(starts), length, history.shape[1]), dtype=np.int64)
    cands = np.zeros((len(starts), length, candidates.shape[1]), dtype=np.int64)
    windows[device, step] = history
    cands[device, step] = candidates
    return Streams(torch.from_numpy(users[starts]), torch.from_numpy(windows), torch.from_numpy(cands),
                   torch.from_numpy(counts.astype(np.int64)))
