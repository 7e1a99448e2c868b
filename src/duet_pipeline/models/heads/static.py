"""The base model's head: one learned two-layer MLP (d -> d, tanh, -> d) for every device.

Its cloud half sends nothing; every other head starts from, or around, these two layers.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import HeadWeights, apply_head
from .base import Head, RowInputs


class StaticHead(Head):
    """The base model's head: the same learned MLP for every device; it sends nothing."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layer1 = nn.Linear(dim, dim)
        self.layer2 = nn.Linear(dim, dim)

    def weights(self, history_emb: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> HeadWeights:
        """The shared head; the history is ignored (same signature as generated heads)."""
        return HeadWeights(self.layer1.weight, self.layer1.bias, self.layer2.weight, self.layer2.bias)

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        return apply_head(user, self.weights())
