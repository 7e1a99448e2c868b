"""M2M: the recipe that trains and serves the M2M head (models/heads/m2m.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class M2MOptions(DynamicOptions):
    """The ``personalization.m2m`` parameters (the meta unit has no options of its own)."""


SPEC = MethodSpec(
    variants={"m2m": {"head": "m2m"}},
    cloud_model="own",
    on_device="receives",
    description="a linear meta unit generates each head layer from c, beside the static one",
    block="m2m",
    options=M2MOptions,
    order=44,
)
