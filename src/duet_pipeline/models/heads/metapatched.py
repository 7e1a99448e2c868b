"""MetaPatch's device model (DCCL, Yao et al., KDD 2021): the cloud model's static head with
patches generated from the device's own meta-patch.

Each patched position (``user``: the backbone's output; ``hidden``: the head's hidden layer)
gets ``x + W x + b``, with ``(W, b) = Theta phi``: ``Theta`` comes from the cloud each round,
``phi`` (``meta_dim`` values) is trained on the device on its own rows. Its "message" is that
meta-patch: nothing is sent per request, the device supplies its own (zero: the cloud model
unpatched, where every device starts). The training recipe is ``methods/dccl.py``.
"""
from __future__ import annotations

import torch

from ..layers import linear_per_run
from ..metapatch import MetaPatch
from .base import PersonalHead, RowInputs


class MetaPatchedHead(PersonalHead):
    name = "metapatch"
    cloud_only = ()

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, positions: list[str], meta_dim: int) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.patch = MetaPatch(dim, tuple(positions), meta_dim, init_std=0.0)

    def message(self, history, history_emb, mask):
        return {"metapatch": history_emb.new_zeros(len(history), self.patch.meta_dim)}

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        patches = self.patch.patches(rows.sent["metapatch"])
        if "user" in patches:
            user = user + self._patched(user, *patches["user"], rows)
        hidden = torch.tanh(self.layer1(user))
        if "hidden" in patches:
            hidden = hidden + self._patched(hidden, *patches["hidden"], rows)
        return self.layer2(hidden)

    @staticmethod
    def _patched(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        if rows.runs:
            return linear_per_run(x, weight, bias, rows.row_of)
        return torch.baddbmm(bias[rows.row_of].unsqueeze(1), x.unsqueeze(1), weight[rows.row_of].transpose(1, 2)).squeeze(1)
