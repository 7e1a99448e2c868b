"""PEPNet: the recipe that trains and serves the PEPNet head (models/heads/pepnet.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from pydantic import Field

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class PEPNetOptions(DynamicOptions):
    """The ``personalization.pepnet`` parameters."""

    gate_hidden: int = Field(ge=1)  # hidden width of each gate network (EPNet and PPNet)


SPEC = MethodSpec(
    variants={"pepnet": {"head": "pepnet"}},
    cloud_model="own",
    on_device="receives",
    description="EPNet gates the item embeddings, PPNet the head layers, from c, on the device",
    block="pepnet",
    options=PEPNetOptions,
    order=43,
)
