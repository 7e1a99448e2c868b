"""Position-aware history weights (DUET-PA), PROTOCOL section 3.

Histories are left-padded with the most recent item last, so column ``j`` of a
window of length L is position ``pos = j``: L-1 for the most recent item, L-2 for the
one before, and so on. Padding always gets weight 0.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# pos: (L,) float positions, L: window length, p: the learnable parameters.
WeightFormula = Callable[[torch.Tensor, int, "PositionWeights"], torch.Tensor]

FORMULAS: dict[str, WeightFormula] = {
    "none": lambda pos, L, p: torch.ones_like(pos),
    "linear": lambda pos, L, p: p.alpha * (pos + 1) / L,
    "smooth": lambda pos, L, p: 1 / (1 + p.alpha * (L - 1 - pos)),
    "exp": lambda pos, L, p: p.alpha * torch.exp((pos + 1 - L) / p.beta),
    "gaussian": lambda pos, L, p: torch.exp(-((pos - p.mu) ** 2) / (2 * p.sigma**2)),
}


class PositionWeights(nn.Module):
    """Learnable recency weights: ``forward(mask)`` gives (B, L) weights, 0 on padding."""

    def __init__(self, kind: str, max_seq_len: int) -> None:
        super().__init__()
        if kind not in FORMULAS:
            raise ValueError(
                f"unknown position_weights '{kind}'; valid choices: {sorted(FORMULAS)}"
            )
        self.kind = kind
        self.max_seq_len = max_seq_len
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.beta = nn.Parameter(torch.tensor(1.0))
        self.mu = nn.Parameter(torch.tensor(float(max_seq_len - 1)))
        self.sigma = nn.Parameter(torch.tensor(1.5))

    def per_position(self) -> torch.Tensor:
        """(L,) weight of each column, ignoring padding."""
        pos = torch.arange(self.max_seq_len, dtype=torch.float32, device=self.alpha.device)
        return FORMULAS[self.kind](pos, self.max_seq_len, self)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.per_position().unsqueeze(0) * mask.to(self.alpha.dtype)

    def scale(self, history_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Scale each history embedding by its position weight."""
        return history_emb * self(mask).unsqueeze(-1)
