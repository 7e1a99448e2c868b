"""Backbones ("static layers"): history embeddings (+ target) -> user vector u in R^d.

Every backbone takes ``history_emb`` (B, L, d) left-padded, most recent last, a boolean
``mask`` (B, L) that is True on real items, and ``target_emb`` (B, d), which only
target-aware backbones (``uses_target``) read; the others get None. Histories always
hold at least one real item, so position L-1 is real.

A backbone is one class here plus one block in ``conf/base/parameters_backbones.yml``:
the class declares ``name`` and its ``Options`` (types and ranges, no defaults); the
YAML block holds every option's value, so defaults live in one place.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, PositiveInt
from torch import nn

from duet_pipeline.parameters import Block, parse_block

from .layers import Dropout

# name -> backbone class, filled by every subclass of Backbone that sets `name`.
BACKBONES: dict[str, type["Backbone"]] = {}


class Backbone(nn.Module):
    """Interface of a backbone; a subclass with a ``name`` registers itself in :data:`BACKBONES`."""

    name: ClassVar[str]
    Options: ClassVar[type[Block]]
    # Whether u depends on the target. If not, rows sharing a history share u, and the
    # recommender computes it once per distinct history.
    uses_target: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            BACKBONES[cls.name] = cls

    def __init__(self, dim: int, max_seq_len: int) -> None:
        super().__init__()
        self.dim = dim
        self.max_seq_len = max_seq_len

    def forward(
        self, history_emb: torch.Tensor, mask: torch.Tensor, target_emb: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError


class DIN(Backbone):
    """Deep Interest Network: target-aware attention pooling over the history.

    The activation unit scores each history item h against the target t from
    [h, t, h - t, h * t]; padding gets no weight.
    """

    name = "din"
    uses_target = True

    class Options(Block):
        attention_units: list[PositiveInt] = Field(min_length=1)  # hidden widths of the activation unit

    def __init__(self, dim: int, max_seq_len: int, *, attention_units: list[int]) -> None:
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
        """Softmax weights (B, L) of the history items for the target, padding at 0.

        The first layer on [h, t, h - t, h * t] is computed as
        (W_h + W_d) h + (W_t - W_d) t + W_p (h * t), with W = [W_h | W_t | W_d | W_p]
        its weight: the same map and the same parameters, but the target's part is
        computed once per row instead of once per history item, and no (B, L, 4d)
        concatenation is built. Half the first layer's work; 1.6x a DIN training step
        (docs/benchmarks.md "speed").
        """
        first = self.activation_unit[0]
        w_h, w_t, w_d, w_p = first.weight.chunk(4, dim=1)
        hidden = (nn.functional.linear(history_emb, w_h + w_d)
                  + nn.functional.linear(history_emb * target_emb.unsqueeze(1), w_p)
                  + nn.functional.linear(target_emb, w_t - w_d, first.bias).unsqueeze(1))
        scores = self.activation_unit[1:](hidden).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(self, history_emb, mask, target_emb):
        weights = self.attention_weights(history_emb, mask, target_emb)
        return torch.bmm(weights.unsqueeze(1), history_emb).squeeze(1)


def masked_gru(gru: nn.GRU, inputs: torch.Tensor, mask: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
    """Top-layer state of ``gru`` after the last real step of left-padded ``inputs``.

    The state starts at zero and a padded step leaves it unchanged, so with left padding
    this equals running the GRU on the real items alone (what packing does), while
    staying plain tensor algebra: ``torch.func.vmap`` can batch it over per-user
    parameters, which packed sequences cannot. Uses ``gru``'s own weights.
    """
    steps = mask.unsqueeze(-1).unbind(1)
    layer_input = inputs
    for layer in range(gru.num_layers):
        w_ih, w_hh = getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}")
        # Input projections of every step at once; only the recurrence is sequential.
        # `unbind`, not `projected[:, t]`: the backward of one unbind stacks the steps'
        # gradients once, where each indexing would zero-fill a full (B, L, 3d) gradient.
        projected = nn.functional.linear(layer_input, w_ih, b_ih).unbind(1)
        state = inputs.new_zeros(inputs.shape[0], gru.hidden_size)
        outputs = []
        for step_input, real in zip(projected, steps):
            r_in, z_in, n_in = step_input.chunk(3, dim=-1)
            r_hid, z_hid, n_hid = nn.functional.linear(state, w_hh, b_hh).chunk(3, dim=-1)
            reset = torch.sigmoid(r_in + r_hid)
            update = torch.sigmoid(z_in + z_hid)
            candidate = torch.tanh(n_in + reset * n_hid)
            new_state = (1 - update) * candidate + update * state
            state = torch.where(real, new_state, state)
            outputs.append(state)
        layer_input = torch.stack(outputs, dim=1)
        if dropout and layer < gru.num_layers - 1:
            layer_input = nn.functional.dropout(layer_input, dropout, gru.training)
    return state


class GRU4Rec(Backbone):
    """GRU over the history; u is the top layer's state right after the last real item.

    Padding never enters the recurrence (see :func:`masked_gru`).
    """

    name = "gru4rec"

    class Options(Block):
        num_layers: int = Field(ge=1)
        dropout: float = Field(ge=0.0, lt=1.0)

    def __init__(self, dim: int, max_seq_len: int, *, num_layers: int, dropout: float) -> None:
        super().__init__(dim, max_seq_len)
        self.dropout = dropout
        self.gru = nn.GRU(dim, dim, num_layers=num_layers, batch_first=True)

    def forward(self, history_emb, mask, target_emb):
        return masked_gru(self.gru, history_emb, mask, self.dropout)


class CausalSelfAttentionBlock(nn.Module):
    """Pre-norm Transformer block (SASRec): x + attn(LN(x)), then x + FFN(LN(x)).

    Written out rather than ``nn.TransformerEncoderLayer``: with d = 32 and 10
    positions, the generic layer's mask handling costs more than the arithmetic.
    Dropout acts on the attention weights and the block output only: on CPU, drawing
    dropout masks costs more than the matrix products of this small model.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"sasrec num_heads={num_heads} must divide the embedding dim {dim}")
        self.num_heads = num_heads
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, seq_len, dim = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(self.attention_norm(x)).chunk(3, dim=-1)
        # (B, L, d) -> (B, heads, L, d / heads)
        q, k, v = (t.view(batch, seq_len, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / (dim // heads) ** 0.5
        scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        attended = self.dropout(torch.softmax(scores, dim=-1)) @ v
        x = x + self.out(attended.transpose(1, 2).reshape(batch, seq_len, dim))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class SASRec(Backbone):
    """Self-attentive sequential recommendation: causal Transformer, output at the last position."""

    name = "sasrec"

    class Options(Block):
        num_blocks: int = Field(ge=1)
        num_heads: int = Field(ge=1)
        dropout: float = Field(ge=0.0, lt=1.0)

    def __init__(self, dim: int, max_seq_len: int, *, num_blocks: int, num_heads: int, dropout: float) -> None:
        super().__init__(dim, max_seq_len)
        self.position = nn.Embedding(max_seq_len, dim)
        nn.init.normal_(self.position.weight, std=0.1)
        self.blocks = nn.ModuleList(
            CausalSelfAttentionBlock(dim, num_heads, dropout) for _ in range(num_blocks)
        )
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    @staticmethod
    def attention_mask(mask: torch.Tensor) -> torch.Tensor:
        """(B, L, L) boolean: query i may see key j <= i that is real, and always itself.

        Letting each position see itself keeps padded query rows from being fully
        masked, which would turn the softmax into NaN.
        """
        seq_len = mask.shape[1]
        eye = torch.eye(seq_len, dtype=torch.bool, device=mask.device)
        causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=mask.device).tril()
        return causal & (mask.unsqueeze(1) | eye)

    def forward(self, history_emb, mask, target_emb):
        keep = mask.unsqueeze(-1)
        x = self.dropout(history_emb * self.dim**0.5 + self.position.weight) * keep
        allowed = self.attention_mask(mask)
        for block in self.blocks:
            # Zero padded positions after every block so they never carry signal.
            x = block(x, allowed) * keep
        return self.norm(x)[:, -1]


def build_backbone(name: str, dim: int, max_seq_len: int, options: dict[str, Any]) -> Backbone:
    """Instantiate the backbone registered as ``name`` (parameter ``backbone``) with its
    complete ``options`` (the ``backbones.<name>`` block)."""
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone '{name}' (parameter `backbone`); valid choices: {sorted(BACKBONES)}"
        )
    backbone = BACKBONES[name]
    parsed = parse_block(backbone.Options, dict(options), f"backbones.{name}")
    return backbone(dim, max_seq_len, **parsed.model_dump())
