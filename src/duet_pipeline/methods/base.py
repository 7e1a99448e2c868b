"""Base: every device runs the cloud model as shipped, with the one static head."""
from __future__ import annotations

from typing import Any

from duet_pipeline.models.recommender import load_model
from duet_pipeline.parameters import Block
from duet_pipeline.training.loop import predict

from .common import Devices, MethodSpec, Personalization

SPEC = MethodSpec(
    variants={"base": {}},
    cloud_model="base",
    on_device="nothing",
    description="the shared base model (UMN) with its one static head on every device",
    order=0,
    baseline=True,
    # PROTOCOL section 6: the paper (as quoted by the reproduction) and the reproduction.
    paper_auc={"base": {"ml-1m": {"din": .9077, "sasrec": .9280, "gru4rec": .9279},
                        "ml-100k": {"din": .8348, "sasrec": .8721, "gru4rec": .8723}}},
    reproduction_auc={"base": {"ml-1m": {"din": .9198, "sasrec": .9375, "gru4rec": .9378},
                               "ml-100k": {"din": .8845, "sasrec": .9079, "gru4rec": .9060}}},
)


def personalize(bundle: dict[str, Any], devices: Devices, options: Block | None,
                variant: dict[str, Any]) -> Personalization:
    """No per-device work: the static head shipped with the model scores every device."""
    return Personalization(predict(load_model(bundle), devices.candidates))
