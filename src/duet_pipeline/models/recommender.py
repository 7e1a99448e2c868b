"""The recommender: shared item table + backbone + target tower + a head.

Score = <head(u), target_vector>, with u = backbone(history, target). The head is any
module with ``weights(history_emb, mask) -> HeadWeights``: the static head (base
model) returns one head for everyone, a parameter generator one head per row.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .backbones import build_backbone
from .layers import HeadWeights, StaticHead, TargetTower, apply_head, item_embedding


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from its state_dict."""

    num_items: int
    max_seq_len: int
    backbone: str
    dim: int = 32
    backbone_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recommender(nn.Module):
    def __init__(self, config: ModelConfig, head: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.items = item_embedding(config.num_items, config.dim)
        self.backbone = build_backbone(
            config.backbone, config.dim, config.max_seq_len, config.backbone_options
        )
        self.target_tower = TargetTower(config.dim)
        self.head = head if head is not None else StaticHead(config.dim)

    def embed_history(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """History item ids (B, L) -> embeddings (B, L, d) and the real-item mask (B, L)."""
        return self.items(history), history > 0

    def user_vector(
        self, history_emb: torch.Tensor, mask: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        return self.backbone(history_emb, mask, self.items(target))

    def head_weights(self, history: torch.Tensor) -> HeadWeights:
        """The head each row's device uses: shared for the base model, generated for DUET."""
        history_emb, mask = self.embed_history(history)
        return self.head.weights(history_emb, mask)

    def score(
        self, history: torch.Tensor, target: torch.Tensor, head: HeadWeights | None = None
    ) -> torch.Tensor:
        """Logits for (history, target) rows; ``head`` given = the device's received head."""
        history_emb, mask = self.embed_history(history)
        if head is None:
            head = self.head.weights(history_emb, mask)
        user = apply_head(self.user_vector(history_emb, mask, target), head)
        return (user * self.target_tower(self.items(target))).sum(dim=-1)

    def forward(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.score(history, target)


def model_bundle(model: Recommender, method: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A picklable description of a trained model: config, method and weights."""
    return {
        "method": method,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        **(extra or {}),
    }


def load_base_model(bundle: dict[str, Any]) -> Recommender:
    """Rebuild a base (static-head) model from :func:`model_bundle`'s output."""
    model = Recommender(ModelConfig(**bundle["config"]))
    model.load_state_dict(bundle["state_dict"])
    return model.eval()
