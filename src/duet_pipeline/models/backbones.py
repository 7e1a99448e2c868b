"""Backbones ("static layers"): history embeddings (+ target) -> user vector u in R^d.

Every backbone takes ``history_emb`` (B, L, d) left-padded, most recent last, a boolean
``mask`` (B, L) that is True on real items, and ``target_emb`` (B, d). Histories always
hold at least one real item, so position L-1 is real.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class Backbone(nn.Module):
    """Interface of a backbone; subclasses register themselves in :data:`BACKBONES`."""

    def __init__(self, dim: int, max_seq_len: int) -> None:
        super().__init__()
        self.dim = dim
        self.max_seq_len = max_seq_len

    def forward(
        self, history_emb: torch.Tensor, mask: torch.Tensor, target_emb: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


class DIN(Backbone):
    """Deep Interest Network: target-aware attention pooling over the history.

    The activation unit scores each history item h against the target t from
    [h, t, h - t, h * t]; padding gets no weight.
    """

    def __init__(self, dim: int, max_seq_len: int, attention_units: tuple[int, ...] = (32, 16)) -> None:
        super().__init__(dim, max_seq_len)
        layers: list[nn.Module] = []
        width = 4 * dim
        for units in attention_units:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, 1))
        self.activation_unit = nn.Sequential(*layers)

    def attention_weights(
        self, history_emb: torch.Tensor, mask: torch.Tensor, target_emb: torch.Tensor
    ) -> torch.Tensor:
        target = target_emb.unsqueeze(1).expand_as(history_emb)
        features = torch.cat(
            [history_emb, target, history_emb - target, history_emb * target], dim=-1
        )
        scores = self.activation_unit(features).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(self, history_emb, mask, target_emb):
        weights = self.attention_weights(history_emb, mask, target_emb)
        return torch.bmm(weights.unsqueeze(1), history_emb).squeeze(1)


def right_align(history_emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Move each row's real items (left-padded) to the front, as packing expects."""
    seq_len = history_emb.shape[1]
    offsets = (seq_len - lengths).unsqueeze(1)
    index = (torch.arange(seq_len, device=history_emb.device).unsqueeze(0) + offsets) % seq_len
    return torch.gather(history_emb, 1, index.unsqueeze(-1).expand_as(history_emb))


class GRU4Rec(Backbone):
    """GRU over the history; u is the top layer's state right after the last real item.

    Sequences are packed, so padding never enters the recurrence.
    """

    def __init__(self, dim: int, max_seq_len: int, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__(dim, max_seq_len)
        self.gru = nn.GRU(dim, dim, num_layers=num_layers, batch_first=True, dropout=dropout)

    def forward(self, history_emb, mask, target_emb):
        lengths = mask.sum(dim=1)
        packed = pack_padded_sequence(
            right_align(history_emb, lengths), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, state = self.gru(packed)
        return state[-1]


class SASRec(Backbone):
    """Self-attentive sequential recommendation: causal Transformer, output at the last position."""

    def __init__(
        self,
        dim: int,
        max_seq_len: int,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(dim, max_seq_len)
        self.num_heads = num_heads
        self.position = nn.Embedding(max_seq_len, dim)
        nn.init.normal_(self.position.weight, std=0.1)
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, dim_feedforward=dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_blocks, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B * heads, L, L) additive mask: causal, padding keys hidden, self always visible.

        Letting each position see itself keeps padded query rows from being fully
        masked, which would turn the softmax into NaN.
        """
        seq_len = mask.shape[1]
        eye = torch.eye(seq_len, dtype=torch.bool, device=mask.device)
        causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=mask.device).tril()
        allowed = causal & (mask.unsqueeze(1) | eye)
        additive = torch.zeros(allowed.shape, dtype=torch.float32, device=mask.device)
        additive = additive.masked_fill(~allowed, float("-inf"))
        return additive.repeat_interleave(self.num_heads, dim=0)

    def forward(self, history_emb, mask, target_emb):
        positions = self.position.weight.unsqueeze(0)
        x = self.dropout(history_emb * self.dim**0.5 + positions) * mask.unsqueeze(-1)
        x = self.encoder(x, mask=self.attention_mask(mask))
        x = self.norm(x) * mask.unsqueeze(-1)
        return x[:, -1]


BACKBONES: dict[str, type[Backbone]] = {"din": DIN, "gru4rec": GRU4Rec, "sasrec": SASRec}


def build_backbone(name: str, dim: int, max_seq_len: int, options: dict[str, Any] | None = None) -> Backbone:
    """Instantiate the backbone registered as ``name`` (parameter ``backbone``)."""
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone '{name}' (parameter `backbone`); valid choices: {sorted(BACKBONES)}"
        )
    return BACKBONES[name](dim, max_seq_len, **(options or {}))
