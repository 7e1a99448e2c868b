"""MetaPatch (DCCL, Yao et al., KDD 2021): a residual patch on the frozen cloud model's
head whose weights are generated from a device's tiny meta-patch.

At each chosen position of the static head the device adds a patch h,
``f'(x) = f(x) + h(f(x))``, with h linear (``h(z) = W z + b``):

- ``"user"``: the user vector before the head, ``u' = u + W_u u + b_u``;
- ``"hidden"``: after the head's first layer, ``z' = z + W_z z + b_z`` with
  ``z = tanh(W1 u' + b1)``.

The patch's weights are not free per device: ``[vec(W); b]`` of every position is
``Theta phi_n``, with ``Theta`` (P, k) the global base parameters every device shares and
``phi_n`` (k,) device n's meta-patch, the only values a device trains. ``phi_n = 0``
gives ``h = 0``: an untrained device scores exactly as the cloud model.
"""
from __future__ import annotations

import torch
from torch import nn

from .heads.static import StaticHead
from .layers import linear_per_run

PATCH_POSITIONS = ("user", "hidden")

# (W (G, d, d), b (G, d)) of each patched position, for G devices.
Patches = dict[str, tuple[torch.Tensor, torch.Tensor]]


class MetaPatch(nn.Module):
    """``Theta``: maps each device's meta-patch (k,) to its patches' weights."""

    def __init__(self, dim: int, positions: tuple[str, ...], meta_dim: int, init_std: float) -> None:
        super().__init__()
        unknown = sorted(set(positions) - set(PATCH_POSITIONS))
        if unknown or not positions:
            raise ValueError(f"patch positions must be a non-empty subset of {PATCH_POSITIONS}, got {positions}")
        self.dim, self.positions = dim, tuple(p for p in PATCH_POSITIONS if p in positions)
        self.per_position = dim * dim + dim  # W and b of one linear d -> d
        self.theta = nn.Parameter(torch.randn(len(self.positions) * self.per_position, meta_dim) * init_std)

    @property
    def meta_dim(self) -> int:
        return self.theta.shape[1]

    def patches(self, metapatches: torch.Tensor) -> Patches:
        """Meta-patches (G, k) -> each position's (W (G, d, d), b (G, d))."""
        flat = metapatches @ self.theta.T  # (G, P)
        d, size = self.dim, self.per_position
        out = {}
        for index, position in enumerate(self.positions):
            block = flat[:, index * size : (index + 1) * size]
            out[position] = (block[:, : d * d].reshape(-1, d, d), block[:, d * d :])
        return out

    def bytes(self) -> int:
        return self.theta.numel() * self.theta.element_size()


def patched_logits(head: StaticHead, user: torch.Tensor, target_vector: torch.Tensor, patches: Patches,
                   row_of: torch.Tensor) -> torch.Tensor:
    """Logits (B,) of rows with user vectors and target vectors (B, d), row i patched with
    device ``row_of[i]``'s patches (``row_of`` non-decreasing: rows grouped by device)."""
    if "user" in patches:
        user = user + linear_per_run(user, *patches["user"], row_of)
    hidden = torch.tanh(head.layer1(user))
    if "hidden" in patches:
        hidden = hidden + linear_per_run(hidden, *patches["hidden"], row_of)
    return (head.layer2(hidden) * target_vector).sum(dim=-1)


def bernoulli_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Per-row KL(Bernoulli(sigmoid(teacher)) || Bernoulli(sigmoid(student))); the
    teacher is a constant (its gradient never flows).

    KL = H(p_t, p_s) - H(p_t): both cross-entropies are binary cross-entropy with
    logits against the soft target ``p_t``, which is stable for any logit."""
    target = torch.sigmoid(teacher_logits.detach())
    cross = nn.functional.binary_cross_entropy_with_logits(student_logits, target, reduction="none")
    entropy = nn.functional.binary_cross_entropy_with_logits(teacher_logits.detach(), target, reduction="none")
    return cross - entropy
