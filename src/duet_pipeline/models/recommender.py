"""The recommender: shared item table + backbone + target tower + a head.

Score = <head(u, message), target_vector>, with u = backbone(history, target) and the
message what the head's cloud half sends for the window (models/heads/: the static head
sends nothing, DUET's generator the generated layers, the dynamic-weight heads their
gates, scales or signal). Every head runs the same way: ``message`` is the cloud's half,
``score(..., message=...)`` the device's. Position weights (DUET-PA) scale the history
embeddings that enter a head that reads them and, optionally, the backbone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pydantic import Field
from torch import nn

from duet_pipeline.parameters import Block, parse_block

from .backbones import build_backbone
from .heads.generator import ParameterGenerator
from .heads.static import StaticHead
from .layers import TargetTower, item_embedding
from .heads import build_personal_head
from .heads.base import Head, RowInputs
from .position import PositionWeights


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from its state_dict."""

    num_items: int
    max_seq_len: int
    backbone: str
    dim: int = 32
    backbone_options: dict[str, Any] = field(default_factory=dict)
    # None: static head (base model); else ParameterGenerator keyword arguments.
    generator: dict[str, Any] | None = None
    position_weights: str = "none"
    position_weights_on_backbone: bool = False
    # None: no personalised head; else {"name": <registered head>, **its keyword arguments}.
    personal_head: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelParams(Block):
    """The ``model`` parameters shared by every method's model."""

    dim: int = Field(ge=1)  # embedding dimension d


def base_model_config(num_items: int, max_seq_len: int, backbone: str, model: dict[str, Any],
                      backbones: dict[str, Any]) -> ModelConfig:
    """The base model's config from the ``model`` and ``backbones`` parameters and the data's sizes."""
    if backbone not in backbones:
        raise ValueError(f"no parameter block backbones.{backbone} (conf/base/parameters_backbones.yml)")
    return ModelConfig(
        num_items=num_items,
        max_seq_len=max_seq_len,
        backbone=backbone,
        dim=parse_block(ModelParams, model, "model").dim,
        backbone_options=dict(backbones[backbone]),
    )


def consecutive_runs(history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each run of identical consecutive histories, run index of each row).

    Exact and O(B L); unlike ``torch.unique(dim=0)``, which is slow on CPU, it only
    merges neighbours, which is where shared histories sit in our batches.
    """
    starts = torch.ones(len(history), dtype=torch.bool, device=history.device)
    starts[1:] = (history[1:] != history[:-1]).any(dim=1)
    return history[starts], torch.cumsum(starts, 0) - 1


class Recommender(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.items = item_embedding(config.num_items, config.dim)
        self.backbone = build_backbone(
            config.backbone, config.dim, config.max_seq_len, config.backbone_options
        )
        self.target_tower = TargetTower(config.dim)
        # torch.unique is data-dependent, which torch.func.vmap cannot batch: callers
        # that vmap over the model turn the shared-history shortcut off.
        self.dedupe_histories = True
        self.position_weights = PositionWeights(config.position_weights, config.max_seq_len)
        if config.personal_head is not None:
            self.head: Head = build_personal_head(config.personal_head, config.dim, config.max_seq_len,
                                                       config.num_items)
        elif config.generator is None:
            self.head = StaticHead(config.dim)
        else:
            self.head = ParameterGenerator(config.dim, config.max_seq_len, **config.generator)

    def embed_history(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """History item ids (B, L) -> embeddings (B, L, d) and the real-item mask (B, L)."""
        return self.items(history), history > 0

    def user_vectors(self, history_emb: torch.Tensor, mask: torch.Tensor, row_of: torch.Tensor,
                     target_emb: torch.Tensor) -> torch.Tensor:
        """The backbone's output u (B, d) for each row, from the distinct histories'
        embeddings (H, L, d): the part every device holds statically. Target-free backbones
        encode each distinct history once; DIN reads each row's target embedding."""
        if self.backbone.uses_target:
            return self._backbone(history_emb[row_of], mask[row_of], target_emb)
        return self._backbone(history_emb, mask, None)[row_of]

    def _backbone(self, history_emb: torch.Tensor, mask: torch.Tensor, target_emb: torch.Tensor | None) -> torch.Tensor:
        if self.config.position_weights_on_backbone:
            history_emb = self.position_weights.scale(history_emb, mask)
        return self.backbone(history_emb, mask, target_emb)

    def message(self, history: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head's cloud half: what it sends for each history window (B, L); a window with
        nothing known in it gets the head's cold-start message."""
        history_emb, mask = self.embed_history(history)
        sent = self._message(history, history_emb, mask)
        cold = ~mask.any(dim=1)
        if not sent or not bool(cold.any()):
            return sent
        fallback = self.head.cold_start(history, *self._head_view(history_emb, mask))
        return {name: torch.where(cold.view(-1, *[1] * (t.dim() - 1)), fallback[name], t) for name, t in sent.items()}

    def message_names(self) -> list[str]:
        """The names of the tensors the head's cloud half sends (none: it sends nothing)."""
        with torch.inference_mode():
            return list(self.message(torch.ones(1, self.config.max_seq_len, dtype=torch.long)))

    def _head_view(self, history_emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The history embeddings a head's cloud half reads: position-weighted where it reads them."""
        if self.head.reads_position_weights:
            return self.position_weights.scale(history_emb, mask), mask
        return history_emb, mask

    def _message(self, history: torch.Tensor, history_emb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head.message(history, *self._head_view(history_emb, mask))

    def score(
        self, history: torch.Tensor, target: torch.Tensor, row_of: torch.Tensor | None = None,
        message: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits for (history, target) rows; ``message`` given: what the cloud sent for each
        distinct history, the device's half alone (None: the cloud's half computed here too,
        as in training).

        Consecutive rows that share a history (a positive and its negatives, a device's
        candidates) share the head's message and, for target-free backbones, the user
        vector: both are computed once per run and gathered back, which gives the same
        values at a fraction of the cost.

        ``row_of`` given: ``history`` holds distinct histories (H, L) and ``row_of``
        (one per target) says which one each row reads. Callers under
        ``torch.func.vmap``, which cannot find runs itself (data-dependent shapes), pass
        runs found beforehand this way.
        """
        distinct, row_of = self._runs(history, row_of)
        history_emb, mask = self.embed_history(distinct)
        if message is None:
            message = self._message(distinct, history_emb, mask)
        rows = RowInputs(message, row_of, distinct, mask, target, self.items(target), runs=self.dedupe_histories)
        history_emb, rows.target_emb = self.head.gate_embeddings(history_emb, mask, rows)
        user = self.user_vectors(history_emb, mask, row_of, rows.target_emb)
        return (self.head(user, rows) * self.target_tower(rows.target_emb)).sum(dim=-1)

    def score_messages(self, history: torch.Tensor, target: torch.Tensor, row_of: torch.Tensor,
                       sent: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        """:meth:`score` of the same rows (distinct ``history`` and ``row_of`` given) under each
        message of ``sent``, as a device holding several heads would score them. Unless the
        head gates the embeddings (then the backbone reads the message), the backbone and the
        target tower run once for all of them: the replay scores every step with every head
        its device could hold (replay/stale.py)."""
        if type(self.head).gate_embeddings is not Head.gate_embeddings:
            return [self.score(history, target, row_of, message) for message in sent]
        history_emb, mask = self.embed_history(history)
        target_emb = self.items(target)
        user = self.user_vectors(history_emb, mask, row_of, target_emb)
        tower = self.target_tower(target_emb)
        return [(self.head(user, RowInputs(message, row_of, history, mask, target, target_emb,
                                           runs=self.dedupe_histories)) * tower).sum(dim=-1) for message in sent]

    def head_inputs(self, history: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(user vector u, target vector), each (B, d): what the static head reads and what
        its output is scored against. MetaPatch's patches sit between the two."""
        distinct, row_of = self._runs(history, None)
        history_emb, mask = self.embed_history(distinct)
        target_emb = self.items(target)
        return self.user_vectors(history_emb, mask, row_of, target_emb), self.target_tower(target_emb)

    def _runs(self, history: torch.Tensor, row_of: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct histories, row -> distinct index) as :meth:`score` describes."""
        if row_of is not None:
            return history, row_of
        if self.dedupe_histories:
            return consecutive_runs(history)
        # shape[0], not len(): the row count stays symbolic under torch.export (ONNX).
        return history, torch.arange(history.shape[0], device=history.device)

    def forward(self, history: torch.Tensor, target: torch.Tensor,
                row_of: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(history, target, row_of=row_of)


def model_bundle(model: Recommender, method: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A picklable description of a trained model: config, method and weights."""
    return {
        "method": method,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        **(extra or {}),
    }


def load_model(bundle: dict[str, Any]) -> Recommender:
    """Rebuild a model (base or DUET) from :func:`model_bundle`'s output, in eval mode."""
    model = Recommender(ModelConfig(**bundle["config"]))
    model.load_state_dict(bundle["state_dict"])
    return model.eval()
