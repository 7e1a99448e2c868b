"""DUET's parameter generator (PPG) with the stable weight adapter (SWA).

For each request the PPG reads the device's real-time history and emits the weights
and biases of both head layers:

    z   = MLP(GRU(history embeddings))                           shared encoder E
    z_n = L_n(z)                                                 per-layer linear
    W_n, b_n = W_n_static + g_n(z_n)                             generator g_n

``g_n`` is a two-layer MLP. With SWA it is the mixture of ``num_generators`` such
MLPs, mixed per weight matrix by p = softmax(p' / (tau * sum_j |p'_j|)) with p' the
row sums of S = W' W'^T over the generators' flattened matrices. All generator
weights are registered parameters (stacked over generators) and are trained.

The generator learns a history-dependent *deviation* from a learned static head and
starts small (``deviation_init_scale``): training then starts from an ordinary head
instead of from random heads (PROTOCOL section 7).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..backbones import masked_gru
from ..layers import HEAD_TENSORS, HeadWeights, apply_head, apply_head_to_runs
from .base import Head, RowInputs
from .static import StaticHead


def swa_mixing_weights(stacked: torch.Tensor, temperature: float) -> torch.Tensor:
    """SWA mixing weights p (N_p,) for weights stacked over generators (N_p, ...)."""
    flat = stacked.reshape(stacked.shape[0], -1)
    similarity = flat @ flat.T
    scores = similarity.sum(dim=1)
    # All-zero weights (e.g. deviation_init_scale 0) give 0 / 0: mix uniformly instead.
    scale = (temperature * scores.abs().sum()).clamp_min(torch.finfo(scores.dtype).tiny)
    return torch.softmax(scores / scale, dim=0)


class StackedGenerator(nn.Module):
    """``num_generators`` two-layer MLPs in_dim -> hidden -> out_dim, mixed by SWA."""

    def __init__(
        self, in_dim: int, hidden: int, out_dim: int, num_generators: int,
        temperature: float, deviation_init_scale: float,
    ) -> None:
        super().__init__()
        if num_generators < 1:
            raise ValueError(f"num_generators must be >= 1, got {num_generators}")
        self.temperature = temperature
        self.w1 = nn.Parameter(torch.empty(num_generators, hidden, in_dim))
        self.b1 = nn.Parameter(torch.zeros(num_generators, hidden))
        self.w2 = nn.Parameter(torch.empty(num_generators, out_dim, hidden))
        self.b2 = nn.Parameter(torch.zeros(num_generators, out_dim))
        bound1, bound2 = 1 / math.sqrt(in_dim), deviation_init_scale / math.sqrt(hidden)
        nn.init.uniform_(self.w1, -bound1, bound1)
        nn.init.uniform_(self.w2, -bound2, bound2)

    def mixing_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """p for the first and for the second layer of the generator MLPs."""
        return (
            swa_mixing_weights(self.w1, self.temperature),
            swa_mixing_weights(self.w2, self.temperature),
        )

    def effective_mlp(self) -> tuple[torch.Tensor, ...]:
        """The SWA-mixed (w1, b1, w2, b2) of one generator MLP."""
        p1, p2 = self.mixing_weights()
        return (
            torch.einsum("g,gij->ij", p1, self.w1), p1 @ self.b1,
            torch.einsum("g,gij->ij", p2, self.w2), p2 @ self.b2,
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = self.effective_mlp()
        return nn.functional.linear(torch.relu(nn.functional.linear(z, w1, b1)), w2, b2)


class ParameterGenerator(Head):
    """DUET's head: generates the two-layer head for every window (``weights``). Its message
    is the generated layers (``w1``, ``b1``, ``w2``, ``b2``), which the device applies; for
    a window with nothing known in it, the learned static head (the cold-start fallback)."""

    cloud_only = ("encoder_gru.", "encoder_mlp.", "layer_linears.", "generators.")
    base_layers = ("static_head.",)
    reads_position_weights = True

    def __init__(
        self,
        dim: int,
        max_seq_len: int,
        *,
        generator_hidden: int,
        num_generators: int,
        temperature: float,
        deviation_init_scale: float,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.encoder_gru = nn.GRU(dim, dim, num_layers=1, batch_first=True)
        self.encoder_mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.static_head = StaticHead(dim)
        self.layer_linears = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2))
        self.generators = nn.ModuleList(
            StackedGenerator(dim, generator_hidden, dim * dim + dim, num_generators,
                             temperature, deviation_init_scale)
            for _ in range(2)
        )

    def encode(self, history_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Shared encoder E: (B, L, d) history -> (B, d) request representation."""
        return self.encoder_mlp(masked_gru(self.encoder_gru, history_emb, mask))

    def weights(self, history_emb: torch.Tensor, mask: torch.Tensor) -> HeadWeights:
        z = self.encode(history_emb, mask)
        static = self.static_head.weights()
        generated = []
        for layer, (linear, generator) in enumerate(zip(self.layer_linears, self.generators)):
            deviation = generator(linear(z))
            w_static, b_static = static.tensors()[2 * layer : 2 * layer + 2]
            w = w_static + deviation[:, : self.dim * self.dim].view(-1, self.dim, self.dim)
            b = b_static + deviation[:, self.dim * self.dim :]
            generated += [w, b]
        return HeadWeights(*generated)

    def message(self, history: torch.Tensor, history_emb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(HEAD_TENSORS, self.weights(history_emb, mask).tensors()))

    def cold_start(self, history: torch.Tensor, history_emb: torch.Tensor, mask: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
        static = self.static_head.weights().tensors()
        return {name: t.unsqueeze(0).expand(len(history), *t.shape) for name, t in zip(HEAD_TENSORS, static)}

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        heads = HeadWeights(*(rows.sent[name] for name in HEAD_TENSORS))
        if rows.runs:  # each window's head multiplies all its rows at once
            return apply_head_to_runs(user, heads, rows.row_of)
        return apply_head(user, HeadWeights(*(t[rows.row_of] for t in heads.tensors())))
