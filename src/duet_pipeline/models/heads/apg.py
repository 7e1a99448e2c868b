"""APG (Yan et al., NeurIPS 2022): adaptive parameter generation in low-rank form.

Each head layer's weight gets a generated low-rank part, ``W = W_static + U S(c) V``:
``U`` (d x k) and ``V`` (k x d) are shared by every device, and only the small core
``S`` (k x k) is generated from the personalisation signal c (DUET's history encoder)
by a two-layer MLP. The cloud sends the two cores (2 k^2 floats); the device holds U
and V and applies ``u -> V u -> S -> U``. The core MLPs' last layers start at zero: the
head starts at exactly the static one (U and V are random, so the cores' gradient is
not zero).

FuxiCTR's APG also offers over-parameterised and "generate U and V too" variants; this
is its basic low-rank form, with the biases static.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import HistoryEncoder, PersonalHead, RowInputs


class APGHead(PersonalHead):
    name = "apg"
    cloud_only = ("encoder.", "cores.")

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, rank: int, core_hidden: int) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.rank = rank
        self.encoder = HistoryEncoder(dim)
        self.cores = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, core_hidden), nn.ReLU(), nn.Linear(core_hidden, rank * rank))
            for _ in range(2)
        )
        for core in self.cores:
            nn.init.zeros_(core[-1].weight)
            nn.init.zeros_(core[-1].bias)
        self.down = nn.ParameterList(nn.Parameter(torch.randn(rank, dim) / math.sqrt(dim)) for _ in range(2))  # V
        self.up = nn.ParameterList(nn.Parameter(torch.randn(dim, rank) / math.sqrt(rank)) for _ in range(2))  # U

    def message(self, history, history_emb, mask):
        c = self.encoder(history_emb, mask)
        return {f"core{layer}": core(c).view(-1, self.rank, self.rank) for layer, core in enumerate(self.cores, 1)}

    def _low_rank(self, layer: int, x: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        """U S(c) V x for each row, with its device's core S (layer 1 or 2)."""
        down = x @ self.down[layer - 1].T  # (B, k)
        core = rows.sent_rows(f"core{layer}")  # (B, k, k)
        return torch.bmm(core, down.unsqueeze(-1)).squeeze(-1) @ self.up[layer - 1].T

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        hidden = torch.tanh(self.layer1(user) + self._low_rank(1, user, rows))
        return self.layer2(hidden) + self._low_rank(2, hidden, rows)
