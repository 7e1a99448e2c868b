"""Building blocks shared by every method: item table, target tower, head maths."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# PROTOCOL section 7: N(0, 1) item tables train far worse than N(0, 0.1).
EMBEDDING_INIT_STD = 0.1


def item_embedding(num_items: int, dim: int) -> nn.Embedding:
    """The one item table shared by target tower, backbone and PPG; row 0 is padding."""
    table = nn.Embedding(num_items + 1, dim, padding_idx=0)
    nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)
    with torch.no_grad():
        table.weight[0].zero_()
    return table


class Dropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``, with the mask drawn as uniform >= p.

    Same distribution as ``nn.Dropout``'s Bernoulli mask, but on CPU torch's uniform
    sampler is about twice as fast as its Bernoulli one: 350 vs 660 us forward and back
    for one (205, 10, 32) activation (docs/benchmarks.md), which SASRec draws three times
    per training step.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).uniform_() >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


class TargetTower(nn.Module):
    """Target item vector: embedding -> Linear(d, d) -> tanh -> Linear(d, d)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim))

    def forward(self, target_emb: torch.Tensor) -> torch.Tensor:
        return self.net(target_emb)


# The names of a two-layer head's tensors, as a generated head's message carries them.
HEAD_TENSORS = ("w1", "b1", "w2", "b2")


@dataclass
class HeadWeights:
    """The weights of the two-layer head MLP d -> d (tanh) -> d.

    Weights follow ``nn.Linear``'s (out, in) layout. Either shared by the whole batch
    (``w1``: (d, d), ``b1``: (d,)) or one head per row (``w1``: (B, d, d), ``b1``:
    (B, d)): the static head is the first case, generated heads the second.
    """

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    @property
    def per_row(self) -> bool:
        return self.w1.dim() == 3

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.w1, self.b1, self.w2, self.b2)


def apply_head(user_vector: torch.Tensor, weights: HeadWeights) -> torch.Tensor:
    """Run the head MLP on ``user_vector`` (B, d) with shared or per-row weights."""
    if not weights.per_row:
        hidden = torch.tanh(nn.functional.linear(user_vector, weights.w1, weights.b1))
        return nn.functional.linear(hidden, weights.w2, weights.b2)
    # One head per row: batched (1 x d) @ (d x d) products.
    hidden = torch.baddbmm(
        weights.b1.unsqueeze(1), user_vector.unsqueeze(1), weights.w1.transpose(1, 2)
    )
    hidden = torch.tanh(hidden)
    out = torch.baddbmm(weights.b2.unsqueeze(1), hidden, weights.w2.transpose(1, 2))
    return out.squeeze(1)


def run_slots(row_of: torch.Tensor, runs: int) -> tuple[torch.Tensor, int]:
    """Each row's place within its run (``row_of`` non-decreasing) and the longest run."""
    first_row = torch.searchsorted(row_of, torch.arange(runs, device=row_of.device))
    slot = torch.arange(len(row_of), device=row_of.device) - first_row[row_of]
    return slot, (int(slot.max()) + 1 if len(slot) else 1)


def apply_head_to_runs(user_vector: torch.Tensor, run_heads: HeadWeights, row_of: torch.Tensor) -> torch.Tensor:
    """:func:`apply_head` where consecutive rows share a head: ``run_heads`` has one head
    per run and ``row_of`` (non-decreasing) maps each row to its run.

    Rows are laid out as (runs, longest run, d) so each head multiplies all its rows in
    one batched product, instead of copying a d x d matrix for every row.
    """
    hidden = torch.tanh(linear_per_run(user_vector, run_heads.w1, run_heads.b1, row_of))
    return linear_per_run(hidden, run_heads.w2, run_heads.b2, row_of)


def linear_per_run(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, row_of: torch.Tensor) -> torch.Tensor:
    """``x`` (B, in) through the linear layer of its run: ``weight`` (runs, out, in),
    ``bias`` (runs, out), ``row_of`` (B,) non-decreasing; laid out as (runs, longest run,
    in) so each run's matrix multiplies all its rows in one batched product."""
    slot, longest = run_slots(row_of, len(weight))
    padded = x.new_zeros(len(weight), longest, x.shape[-1]).index_put((row_of, slot), x)
    return torch.baddbmm(bias.unsqueeze(1), padded, weight.transpose(1, 2))[row_of, slot]
