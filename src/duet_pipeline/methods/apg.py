"""APG: the recipe that trains and serves the APG head (models/heads/apg.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from pydantic import Field

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class APGOptions(DynamicOptions):
    """The ``personalization.apg`` parameters."""

    rank: int = Field(ge=1)  # k: the generated core is k x k
    core_hidden: int = Field(ge=1)  # hidden width of each core-generating MLP


SPEC = MethodSpec(
    variants={"apg": {"head": "apg"}},
    cloud_model="own",
    on_device="receives",
    description="each head weight plus U S(c) V: the cloud generates the k x k cores",
    block="apg",
    options=APGOptions,
    order=46,
)
