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


# Parameters whose formula holds only above a bound (for a window of length L): smooth's
# 1 + alpha (L-1-pos) must stay > 0 at pos = 0, exp's beta and gaussian's sigma > 0.
# They are learnt unconstrained and mapped to bound + MARGIN + softplus(raw), so no
# optimiser step can divide by zero, explode or give NaN (softplus never reaches the bound).
LOWER_BOUNDS: dict[str, dict[str, Callable[[int], float]]] = {
    "smooth": {"alpha": lambda L: -1.0 / max(L - 1, 1)},
    "exp": {"beta": lambda L: 0.0},
    "gaussian": {"sigma": lambda L: 0.0},
}
MARGIN = 1e-3


class PositionWeights(nn.Module):
    """Learnable recency weights: ``forward(mask)`` gives (B, L) weights, 0 on padding.

    ``alpha``, ``beta``, ``mu``, ``sigma`` are the formula's values (bounded ones within
    their range); the learnt tensors are ``raw.<name>``; :meth:`set_` assigns values."""

    def __init__(self, kind: str, max_seq_len: int) -> None:
        super().__init__()
        if kind not in FORMULAS:
            raise ValueError(
                f"unknown position_weights '{kind}'; valid choices: {sorted(FORMULAS)}"
            )
        self.kind = kind
        self.max_seq_len = max_seq_len
        self.bounds = {name: bound(max_seq_len) + MARGIN for name, bound in LOWER_BOUNDS.get(kind, {}).items()}
        initial = {"alpha": 1.0, "beta": 1.0, "mu": float(max_seq_len - 1), "sigma": 1.5}
        self.raw = nn.ParameterDict({name: nn.Parameter(torch.tensor(0.0)) for name in initial})
        self.set_(**initial)

    def value(self, name: str) -> torch.Tensor:
        raw = self.raw[name]
        return raw if name not in self.bounds else self.bounds[name] + nn.functional.softplus(raw)

    @torch.no_grad()
    def set_(self, **values: float) -> None:
        """Assign formula values (a bounded one must lie above its bound)."""
        for name, value in values.items():
            self.raw[name].fill_(self._raw(name, float(value)))

    def _raw(self, name: str, value: float) -> float:
        if name not in self.bounds:
            return value
        if value <= self.bounds[name]:
            raise ValueError(f"{self.kind} position weights: {name} = {value} must be > {self.bounds[name]:.4g}")
        return float(torch.log(torch.expm1(torch.tensor(value - self.bounds[name], dtype=torch.float64))))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        # Models saved before the bounded parametrisation stored the formula values under
        # <prefix>alpha etc.: convert them, so those bundles still load.
        for name in list(self.raw):
            if prefix + name in state_dict:
                value = float(state_dict.pop(prefix + name))
                state_dict[f"{prefix}raw.{name}"] = torch.tensor(self._raw(name, value))
        super()._load_from_state_dict(state_dict, prefix, *args)

    alpha = property(lambda self: self.value("alpha"))
    beta = property(lambda self: self.value("beta"))
    mu = property(lambda self: self.value("mu"))
    sigma = property(lambda self: self.value("sigma"))

    def per_position(self) -> torch.Tensor:
        """(L,) weight of each column, ignoring padding."""
        pos = torch.arange(self.max_seq_len, dtype=torch.float32, device=self.raw["alpha"].device)
        return FORMULAS[self.kind](pos, self.max_seq_len, self)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.per_position().unsqueeze(0) * mask.to(self.raw["alpha"].dtype)

    def scale(self, history_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Scale each history embedding by its position weight."""
        return history_emb * self(mask).unsqueeze(-1)
