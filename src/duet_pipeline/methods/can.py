"""CAN: the recipe that trains and serves the CAN head (models/heads/can.py, which says
what the head computes): its options and its entry in the method registry."""
from __future__ import annotations

from pydantic import Field, PositiveInt

from .common import MethodSpec
from .dynamic import DynamicOptions, needs_base_model, personalize, train

__all__ = ["SPEC", "needs_base_model", "personalize", "train"]


class CANOptions(DynamicOptions):
    """The ``personalization.can`` parameters."""

    feed_dim: int = Field(ge=1)  # width of the feed embedding (the micro-MLP's input)
    micro_units: list[PositiveInt] = Field(min_length=2, max_length=2)  # [h1, h2] of the micro-MLP
    orders: int = Field(ge=1)  # e, e^2, ..., e^orders pass through the micro-MLP


SPEC = MethodSpec(
    variants={"can": {"head": "can"}},
    cloud_model="own",
    on_device="nothing",
    description="the candidate's embedding as a micro-MLP over the window (co-action); payload 0",
    block="can",
    options=CANOptions,
    order=45,
)
