"""Personalised heads: the dynamic-weight family (LHUC, PPNet, POSO, PEPNet, M2M, CAN, APG).

Each is the base model's two-layer head (d -> d, tanh, -> d) with its layers modulated
per request. A head works in the two halves a device-cloud system has:

- ``request(history, history_emb, mask)`` is the cloud's part, once per distinct
  history window: a dict of tensors (H, ...) sent to the device, the payload (empty
  where the cloud sends nothing);
- ``forward(user, rows)`` is the device's part, per candidate row: the head applied to
  the backbone's user vector with what the cloud sent and the candidate's features.

``gate_embeddings`` lets a method modulate the item embeddings before the backbone
(EPNet); by default it leaves them alone.

Neutral start: every gate starts at exactly 1 (``Gate``: zero last layer under
``2*sigmoid``) and every generated part starts at exactly 0, around the learned static
layers ``layer1``/``layer2`` (named as the base model's ``StaticHead``), so an untrained
head with the base model's weights scores exactly as the base model.

A head class lives in its own file of this package (``models/heads/<name>.py``) and
registers itself under its ``name`` when the package imports it, so a model rebuilt from
its config finds it; the method that trains it (``duet_pipeline.methods.<name>``) only
names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..backbones import masked_gru

if TYPE_CHECKING:
    from duet_pipeline.samples import SampleTensors

# name -> head class, filled by every subclass of PersonalHead that sets `name`.
PERSONAL_HEADS: dict[str, type[PersonalHead]] = {}


class HistoryEncoder(nn.Module):
    """The personalisation signal c (H, d) from a history window: DUET's shared encoder
    (a GRU over the window, then an MLP), used by every method that reads c."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(dim, dim, num_layers=1, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, history_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(masked_gru(self.gru, history_emb, mask))


class Gate(nn.Module):
    """``scale * sigmoid(MLP(x))``, one value per output unit, exactly 1 at the start
    (the last layer is zero-initialised and ``scale`` is 2). ``hidden`` None: one layer."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None, scale: float = 2.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [] if hidden is None else [nn.Linear(in_dim, hidden), nn.ReLU()]
        last = nn.Linear(in_dim if hidden is None else hidden, out_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.sigmoid(self.net(x))


@dataclass
class RowInputs:
    """What the device's half of a head reads for B candidate rows.

    ``sent`` and ``history``/``mask`` are per distinct history (H, ...); ``row_of`` (B,)
    says which one each row reads (rows sharing a history share what the cloud sent).
    """

    sent: dict[str, torch.Tensor]
    row_of: torch.Tensor  # (B,)
    history: torch.Tensor  # (H, L) item ids
    mask: torch.Tensor  # (H, L) True on real items
    target: torch.Tensor  # (B,) item ids
    target_emb: torch.Tensor  # (B, d), after any embedding gate

    def sent_rows(self, key: str) -> torch.Tensor:
        return self.sent[key][self.row_of]


class PersonalHead(nn.Module):
    """Interface of a personalised head; a subclass with a ``name`` registers itself."""

    name: ClassVar[str]
    # Parameter-name prefixes only the cloud's half (``request``) reads.
    cloud_only: ClassVar[tuple[str, ...]] = ("encoder.",)
    # Whether the device's half needs the candidate's features (so it runs on the device,
    # per candidate) beyond applying what it received: reported in the cost table.
    reads_candidate: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            PERSONAL_HEADS[cls.name] = cls

    def __init__(self, dim: int, max_seq_len: int, num_items: int) -> None:
        super().__init__()
        self.dim = dim
        self.layer1 = nn.Linear(dim, dim)
        self.layer2 = nn.Linear(dim, dim)

    def prepare(self, train: SampleTensors) -> None:
        """Set what the head derives from the training data (buffers) before training."""

    def request(self, history: torch.Tensor, history_emb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cloud's part: what it sends for each distinct history (H, ...)."""
        return {}

    def gate_embeddings(self, history_emb: torch.Tensor, mask: torch.Tensor, rows: RowInputs,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(history embeddings (H, L, d), target embeddings (B, d)) the backbone reads."""
        return history_emb, rows.target_emb

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        raise NotImplementedError

    def static(self, user: torch.Tensor) -> torch.Tensor:
        """The static head alone: the base model's computation."""
        return self.layer2(torch.tanh(self.layer1(user)))

    def device_parameters(self) -> list[nn.Parameter]:
        """Parameters the device holds beyond the base model's: those its half reads,
        less the static head (which the base model has too)."""
        cloud_only = {id(p) for name, p in self.named_parameters() if name.startswith(self.cloud_only)}
        static = {id(p) for p in (*self.layer1.parameters(), *self.layer2.parameters())}
        return [p for p in self.parameters() if id(p) not in cloud_only | static]
