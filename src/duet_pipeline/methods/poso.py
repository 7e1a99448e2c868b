"""POSO: the recipe that trains and serves the POSO head (models/heads/poso.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from pydantic import Field

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class POSOOptions(DynamicOptions):
    """The ``personalization.poso`` parameters."""

    branches: int = Field(ge=2)  # N parallel branches per head layer
    gate_scale: float = Field(gt=1)  # C in C*sigmoid; 2 makes every gate start at 1
    gate_hidden: int = Field(ge=1)  # hidden width of each gate network
    code_dim: int = Field(ge=1)  # width of each activity feature's embedding
    popularity_buckets: int = Field(ge=2)  # buckets of the window's mean log-popularity
    branch_init_scale: float = Field(gt=0)  # std of the branches' zero-sum initial parts


SPEC = MethodSpec(
    variants={"poso": {"head": "poso"}},
    cloud_model="own",
    on_device="receives",
    description="each head layer a gated mix of N branches, gated from an activity code",
    block="poso",
    options=POSOOptions,
    order=42,
)
