"""PPNet: the recipe that trains and serves the PPNet head (models/heads/ppnet.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from pydantic import Field

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class PPNetOptions(DynamicOptions):
    """The ``personalization.ppnet`` parameters."""

    gate_hidden: int = Field(ge=1)  # hidden width of each gate network


SPEC = MethodSpec(
    variants={"ppnet": {"head": "ppnet"}},
    cloud_model="own",
    on_device="receives",
    description="each head layer gated by 2*sigmoid(MLP([c; sg(u); sg(target)])) on the device",
    block="ppnet",
    options=PPNetOptions,
    order=41,
)
