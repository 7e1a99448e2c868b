"""POSO (Kuaishou, 2021): personalised modules for imbalanced users.

Each head layer has N parallel branches mixed per device by a gate ``C*sigmoid``
(C = 2) computed from a *personalisation code* of activity features rather than item
ids, so that a light user's head is not drowned by the heavy users':

    layer(x) = sum_k g_k(code) * ((W / N + D_k) x + b / N)

with W, b the learned static layer and D_k each branch's own part. D_k start small,
random and summing to zero over the branches, and the gates' last layers at zero:
with every g_k = 1 the layer is exactly the static one, while the branches already
differ (identical branches would receive identical gradients forever).

The code: the window's fill (real items, 1..L, which caps the user's activity at L)
and the bucketed mean log-popularity of the window's items (train counts, buckets at
the training windows' quantiles), each a small learned embedding. POSO's original
code is "how many interactions the user has had"; our samples do not carry the count
beyond the window, so the fill stands for it (and saturates for users with >= L
interactions). The cloud computes the gates (2N floats) and sends them; the device
holds the branches.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Gate, PersonalHead, RowInputs


class POSOHead(PersonalHead):
    name = "poso"
    cloud_only = ("fill_code.", "popularity_code.", "gates.")

    def __init__(self, dim: int, max_seq_len: int, num_items: int, *, branches: int, gate_scale: float,
                 gate_hidden: int, code_dim: int, popularity_buckets: int, branch_init_scale: float) -> None:
        super().__init__(dim, max_seq_len, num_items)
        self.branches = branches
        self.register_buffer("log_popularity", torch.zeros(num_items + 1))
        self.register_buffer("popularity_edges", torch.zeros(popularity_buckets - 1))
        self.fill_code = nn.Embedding(max_seq_len + 1, code_dim)
        self.popularity_code = nn.Embedding(popularity_buckets, code_dim)
        self.gates = nn.ModuleList(Gate(2 * code_dim, branches, gate_hidden, scale=gate_scale) for _ in range(2))
        parts = torch.randn(2, branches, dim, dim) * branch_init_scale
        self.branch_parts = nn.Parameter(parts - parts.mean(dim=1, keepdim=True))  # (layer, N, d, d), zero sum

    def prepare(self, train) -> None:
        """Item popularity from the positive train rows; bucket edges at the quantiles of
        the training windows' mean log-popularity."""
        positives = train.target[train.label > 0]
        counts = torch.bincount(positives, minlength=len(self.log_popularity))[: len(self.log_popularity)]
        self.log_popularity.copy_(torch.log1p(counts.float()))
        windows = train.history[train.label > 0]
        mean = self._mean_log_popularity(windows, windows > 0)
        levels = torch.linspace(0, 1, len(self.popularity_edges) + 2)[1:-1]
        self.popularity_edges.copy_(torch.quantile(mean, levels) if len(mean) else torch.zeros_like(levels))

    def _mean_log_popularity(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.log_popularity[history] * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def code(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The personalisation code (H, 2 code_dim) of each window."""
        bucket = torch.bucketize(self._mean_log_popularity(history, mask), self.popularity_edges)
        return torch.cat([self.fill_code(mask.sum(dim=1)), self.popularity_code(bucket)], dim=-1)

    def message(self, history, history_emb, mask):
        code = self.code(history, mask)
        return {f"gate{layer}": gate(code) for layer, gate in enumerate(self.gates, start=1)}

    def _mixed(self, layer: int, linear: nn.Linear, x: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        """sum_k g_k ((W / N + D_k) x + b / N) for each row, with its device's gates."""
        gates = rows.sent_rows(f"gate{layer}")  # (B, N)
        parts = self.branch_parts[layer - 1]  # (N, d, d)
        branch_outputs = (x @ parts.reshape(-1, self.dim).T).view(x.shape[0], self.branches, self.dim)
        shared = linear(x) * gates.mean(dim=1, keepdim=True)
        return shared + (gates.unsqueeze(-1) * branch_outputs).sum(dim=1)

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        hidden = torch.tanh(self._mixed(1, self.layer1, user, rows))
        return self._mixed(2, self.layer2, hidden, rows)
