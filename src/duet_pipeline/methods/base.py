"""Base: every device runs the cloud model as shipped, with the one static head."""
from __future__ import annotations

from typing import Any

from duet_pipeline.models.recommender import Recommender
from duet_pipeline.training.loop import predict

from .common import Devices, Personalization


def personalize(model: Recommender, devices: Devices, options: dict[str, Any]) -> Personalization:
    """No per-device work: the static head shipped with the model scores every device."""
    return Personalization(predict(model, devices.candidates))
