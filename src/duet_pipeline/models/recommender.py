"""The recommender: shared item table + backbone + target tower + a head.

Score = <head(u), target_vector>, with u = backbone(history, target). The head is
either the static head (the base model: one head for every device), the parameter
generator (DUET: one head per request, generated from its history) or a personalised
head of the dynamic-weight family (models/heads/: the head's layers gated, mixed or
extended per request). Position weights
(DUET-PA) scale the history embeddings that enter the generator and, optionally,
the backbone.
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
from .layers import HeadWeights, TargetTower, apply_head, apply_head_to_runs, item_embedding
from .heads import build_personal_head
from .heads.base import PersonalHead, RowInputs
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
            self.head: nn.Module = build_personal_head(config.personal_head, config.dim, config.max_seq_len,
                                                       config.num_items)
        elif config.generator is None:
            self.head = StaticHead(config.dim)
        else:
            self.head = ParameterGenerator(config.dim, config.max_seq_len, **config.generator)

    @property
    def generates_heads(self) -> bool:
        return self.config.generator is not None

    def embed_history(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """History item ids (B, L) -> embeddings (B, L, d) and the real-item mask (B, L)."""
        return self.items(history), history > 0

    def user_vector(
        self, history_emb: torch.Tensor, mask: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """The backbone's output u (B, d): the part every device holds statically.

        ``target`` is only read by target-aware backbones (DIN) and may be None otherwise.
        """
        if self.config.position_weights_on_backbone:
            history_emb = self.position_weights.scale(history_emb, mask)
        target_emb = self.items(target) if self.backbone.uses_target else None
        return self.backbone(history_emb, mask, target_emb)

    def head_weights(self, history: torch.Tensor) -> HeadWeights:
        """The head each request's device uses: shared (base) or generated (DUET)."""
        return self._heads(*self.embed_history(history))

    def _heads(self, history_emb: torch.Tensor, mask: torch.Tensor) -> HeadWeights:
        """Heads from embedded histories; position weights scale what the head sees."""
        return self.head.weights(self.position_weights.scale(history_emb, mask), mask)

    def score(
        self, history: torch.Tensor, target: torch.Tensor, head: HeadWeights | None = None,
        row_of: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits for (history, target) rows; ``head`` given = the device's received head.

        Consecutive rows that share a history (a positive and its negatives, a device's
        candidates) share the generated head and, for target-free backbones, the user
        vector: both are computed once per run and gathered back, which gives the same
        values at a fraction of the cost.

        ``row_of`` given: ``history`` holds distinct histories (H, L) and ``row_of``
        (one per target) says which one each row reads. Callers under
        ``torch.func.vmap``, which cannot find runs itself (data-dependent shapes), pass
        runs found beforehand this way.
        """
        distinct, row_of = self._runs(history, row_of)
        if isinstance(self.head, PersonalHead):
            return self.personal_score(distinct, target, row_of)
        history_emb, mask = self.embed_history(distinct)
        user = self._row_user_vectors(history_emb, mask, row_of, target)
        if head is not None:
            user = apply_head(user, head)
        else:
            head = self._heads(history_emb, mask)
            if not head.per_row:
                user = apply_head(user, head)
            elif self.dedupe_histories:
                user = apply_head_to_runs(user, head, row_of)
            else:
                user = apply_head(user, HeadWeights(*(t[row_of] for t in head.tensors())))
        return (user * self.target_tower(self.items(target))).sum(dim=-1)

    def _row_user_vectors(self, history_emb: torch.Tensor, mask: torch.Tensor, row_of: torch.Tensor,
                          target: torch.Tensor) -> torch.Tensor:
        """Each row's user vector (B, d) from the distinct histories' embeddings: target-free
        backbones encode each distinct history once."""
        if self.backbone.uses_target:
            return self.user_vector(history_emb[row_of], mask[row_of], target)
        return self.user_vector(history_emb, mask, None)[row_of]

    def head_inputs(self, history: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(user vector u, target vector), each (B, d): what the static head reads and what
        its output is scored against. MetaPatch's patches sit between the two."""
        distinct, row_of = self._runs(history, None)
        history_emb, mask = self.embed_history(distinct)
        return self._row_user_vectors(history_emb, mask, row_of, target), self.target_tower(self.items(target))

    def _runs(self, history: torch.Tensor, row_of: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct histories, row -> distinct index) as :meth:`score` describes."""
        if row_of is not None:
            return history, row_of
        if self.dedupe_histories:
            return consecutive_runs(history)
        # shape[0], not len(): the row count stays symbolic under torch.export (ONNX).
        return history, torch.arange(history.shape[0], device=history.device)

    def request(self, history: torch.Tensor) -> dict[str, torch.Tensor]:
        """A personalised head's cloud half: what it sends for each history window (B, L)."""
        return self.head.request(history, *self.embed_history(history))

    def personal_score(self, history: torch.Tensor, target: torch.Tensor, row_of: torch.Tensor,
                       sent: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits with a personalised head of rows reading distinct ``history`` (H, L)
        through ``row_of``. ``sent``: what the cloud sent for each history, the device's
        half alone (None: the cloud's half computed here too, as in training)."""
        history_emb, mask = self.embed_history(history)
        if sent is None:
            sent = self.head.request(history, history_emb, mask)
        rows = RowInputs(sent, row_of, history, mask, target, self.items(target))
        history_emb, rows.target_emb = self.head.gate_embeddings(history_emb, mask, rows)
        if self.backbone.uses_target:
            user = self.backbone(history_emb[row_of], mask[row_of], rows.target_emb)
        else:
            user = self.backbone(history_emb, mask, None)[row_of]
        user = self.head(user, rows)
        return (user * self.target_tower(rows.target_emb)).sum(dim=-1)

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
