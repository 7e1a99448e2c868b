"""A head is the unit of deployment: a cloud half and a device half (:class:`Head`).

- ``message(history, history_emb, mask)`` is the cloud's half, once per distinct history
  window: named tensors (H, ...) sent to the device (empty where the cloud sends nothing);
- ``forward(user, rows)`` is the device's half, per candidate row: the head applied to the
  backbone's user vector with what the cloud sent (``rows.sent``) and the candidate.

``gate_embeddings`` lets a head modulate the item embeddings before the backbone (EPNet);
by default it leaves them alone. The model (``Recommender``) runs every head the same way.

The heads of this package: ``static`` (the base model's; sends nothing), ``generator``
(DUET's; sends the generated layers), and the dynamic-weight family (LHUC, PPNet, POSO,
PEPNet, M2M, CAN, APG), each the base model's two-layer head (d -> d, tanh, -> d) with its
layers modulated per request, on :class:`PersonalHead`.

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
    ``runs``: ``row_of`` is non-decreasing and may be batched by run (not under
    ``torch.func.vmap`` or an ONNX export, whose shapes cannot depend on the data).
    """

    sent: dict[str, torch.Tensor]
    row_of: torch.Tensor  # (B,)
    history: torch.Tensor  # (H, L) item ids
    mask: torch.Tensor  # (H, L) True on real items
    target: torch.Tensor  # (B,) item ids
    target_emb: torch.Tensor  # (B, d), after any embedding gate
    runs: bool = True

    def sent_rows(self, key: str) -> torch.Tensor:
        return self.sent[key][self.row_of]


class Head(nn.Module):
    """A deployable head: ``message`` (the cloud's half) and ``forward`` (the device's)."""

    # Parameter-name prefixes only the cloud's half (``message``) reads.
    cloud_only: ClassVar[tuple[str, ...]] = ()
    # Whether the device's half needs the candidate's features (so it runs on the device,
    # per candidate) beyond applying what it received: reported in the cost table.
    reads_candidate: ClassVar[bool] = False
    # Whether the message's values are position-weighted history embeddings (DUET-PA).
    reads_position_weights: ClassVar[bool] = False
    # Parameter-name prefixes of the static layers, which the base model holds as well.
    base_layers: ClassVar[tuple[str, ...]] = ("layer1.", "layer2.")

    def prepare(self, train: SampleTensors) -> None:
        """Set what the head derives from the training data (buffers) before training."""

    def message(self, history: torch.Tensor, history_emb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cloud's half: what it sends for each distinct history (H, ...)."""
        return {}

    def cold_start(self, history: torch.Tensor, history_emb: torch.Tensor, mask: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
        """The message for windows with nothing known in them: by default the head's own
        answer to an empty window."""
        return self.message(history, history_emb, mask)

    def gate_embeddings(self, history_emb: torch.Tensor, mask: torch.Tensor, rows: RowInputs,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(history embeddings (H, L, d), target embeddings (B, d)) the backbone reads."""
        return history_emb, rows.target_emb

    def forward(self, user: torch.Tensor, rows: RowInputs) -> torch.Tensor:
        raise NotImplementedError

    def device_parameters(self) -> list[nn.Parameter]:
        """Parameters the device holds beyond the base model's: those its half reads, less
        the static layers (which the base model has too)."""
        skipped = self.cloud_only + self.base_layers
        return [p for name, p in self.named_parameters() if not name.startswith(skipped)]


class PersonalHead(Head):
    """A dynamic-weight head around the static layers; a subclass with a ``name`` registers itself."""

    name: ClassVar[str]
    cloud_only: ClassVar[tuple[str, ...]] = ("encoder.",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            PERSONAL_HEADS[cls.name] = cls

    def __init__(self, dim: int, max_seq_len: int, num_items: int) -> None:
        super().__init__()
        self.dim = dim
        self.layer1 = nn.Linear(dim, dim)
        self.layer2 = nn.Linear(dim, dim)

    def static(self, user: torch.Tensor) -> torch.Tensor:
        """The static head alone: the base model's computation."""
        return self.layer2(torch.tanh(self.layer1(user)))
