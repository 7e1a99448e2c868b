"""LHUC: the recipe that trains and serves the LHUC head (models/heads/lhuc.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from pydantic import Field

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class LHUCOptions(DynamicOptions):
    """The ``personalization.lhuc`` parameters."""

    gate_scale: float = Field(gt=1)  # the scales lie in (0, gate_scale); 2 makes them start at 1


SPEC = MethodSpec(
    variants={"lhuc": {"head": "lhuc"}},
    cloud_model="own",
    on_device="receives",
    description="each head unit scaled by 2*sigmoid(linear(c)); the cloud sends the scales",
    block="lhuc",
    options=LHUCOptions,
    order=40,
)
