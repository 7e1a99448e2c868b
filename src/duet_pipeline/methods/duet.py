"""DUET: the cloud generates each device's head from its real-time history; no training on the device.

Simulation of one request per device: the cloud runs the parameter generator on the
device's current history window and sends the head's weights (the payload); the
device scores its candidates with its static backbone and the received head.

Variants (PROTOCOL section 3): ``duet`` (one generator), ``duet+swa`` (the SWA mixture
of ``swa_generators`` generators) and ``duet-pa-<kind>`` (one generator reading
position-weighted histories). The cloud recipe trains backbone and generator jointly,
from scratch (cold start, the default) or from the base model (``warm_start``).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from pydantic import Field

from duet_pipeline.models.heads.generator import ParameterGenerator
from duet_pipeline.models.position import FORMULAS
from duet_pipeline.models.recommender import ModelConfig, Recommender, base_model_config, load_model, model_bundle
from duet_pipeline.parameters import Block
from duet_pipeline.training.loop import fit
from duet_pipeline.training.models import CloudData, EpochCallback, Trained, trained

from .common import Devices, MethodSpec, Personalization
from .messaging import personalize_with_messages

logger = logging.getLogger(__name__)


class DuetOptions(Block):
    """The ``personalization.duet`` parameters: the generator, its training start, serving."""

    generator_hidden: int = Field(ge=1)  # width of each generator MLP g_n
    swa_generators: int = Field(ge=2)  # generators N_p mixed by SWA in the "+swa" variants
    temperature: float = Field(gt=0)  # SWA temperature tau
    deviation_init_scale: float = Field(ge=0)  # generated heads start near the static head
    position_weights_on_backbone: bool  # DUET-PA variants also scale the backbone's input
    warm_start: bool  # start from the trained base model instead of from scratch
    batch_devices: int = Field(ge=1)  # devices whose heads the cloud generates in one call
    latency_devices: int = Field(ge=1)  # devices timed one request at a time (p50 / p99)
    latency_batches: int = Field(ge=1)  # repeats of the batched generation timing


POSITION_KINDS = [kind for kind in FORMULAS if kind != "none"]

SPEC = MethodSpec(
    variants={
        "duet": {"swa": False, "position_weights": "none"},
        "duet+swa": {"swa": True, "position_weights": "none"},
        **{f"duet-pa-{kind}": {"swa": False, "position_weights": kind} for kind in POSITION_KINDS},
    },
    cloud_model="own",
    on_device="receives",
    description="the cloud generates each device's head from its real-time history",
    block="duet",
    options=DuetOptions,
    order=20,
    # The paper's DUET has SWA: it sits beside our "duet+swa". The reproduction's DUET has
    # none: it sits beside our "duet".
    paper_auc={"duet+swa": {"ml-1m": {"din": .9230, "sasrec": .9326, "gru4rec": .9311},
                            "ml-100k": {"din": .8581, "sasrec": .8723, "gru4rec": .8755}}},
    reproduction_auc={
        "duet": {"ml-1m": {"din": .9306, "sasrec": .9389, "gru4rec": .9389},
                 "ml-100k": {"din": .9004, "sasrec": .9067, "gru4rec": .9040}},
        "duet-pa-linear": {"ml-1m": {"din": .9315, "sasrec": .9390, "gru4rec": .9392},
                           "ml-100k": {"din": .9012, "sasrec": .9046, "gru4rec": .9021}},
        "duet-pa-gaussian": {"ml-1m": {"din": .9318, "sasrec": .9401, "gru4rec": .9393},
                             "ml-100k": {"din": .9007, "sasrec": .9025, "gru4rec": .9014}},
    },
)


def duet_config(base: ModelConfig, options: DuetOptions, variant: dict[str, Any]) -> ModelConfig:
    """The DUET model's config: the base model's backbone with a generated head."""
    return ModelConfig(
        num_items=base.num_items,
        max_seq_len=base.max_seq_len,
        backbone=base.backbone,
        dim=base.dim,
        backbone_options=dict(base.backbone_options),
        generator={
            "generator_hidden": options.generator_hidden,
            "num_generators": options.swa_generators if variant["swa"] else 1,
            "temperature": options.temperature,
            "deviation_init_scale": options.deviation_init_scale,
        },
        position_weights=variant["position_weights"],
        position_weights_on_backbone=options.position_weights_on_backbone and variant["position_weights"] != "none",
    )


def warm_start_from_base(duet: Recommender, base_state: dict[str, Any]) -> list[str]:
    """Copy the base model's item table, backbone, target tower and head into ``duet``.

    The base head becomes the static head around which the PPG generates deviations.
    Returns the names of the DUET parameters that were initialised from the base model.
    """
    renamed = {
        (f"head.static_head.{key[len('head.'):]}" if key.startswith("head.") else key): value
        for key, value in base_state.items()
    }
    own = duet.state_dict()
    copied = {k: v for k, v in renamed.items() if k in own and own[k].shape == v.shape}
    duet.load_state_dict(copied, strict=False)
    return sorted(copied)


def needs_base_model(options: DuetOptions, variant: dict[str, Any]) -> bool:
    """Only a warm start reads the base model; a cold start needs the data's sizes only."""
    return options.warm_start


def build_model(data: CloudData, options: DuetOptions, variant: dict[str, Any]) -> Recommender:
    """The untrained DUET model for ``data``'s backbone and sizes."""
    shape = base_model_config(data.num_items, data.train.history.shape[1], data.backbone, data.model, data.backbones)
    return Recommender(duet_config(shape, options, variant))


def train(name: str, data: CloudData, options: DuetOptions, variant: dict[str, Any],
          base_bundle: dict[str, Any] | None, on_epoch_end: EpochCallback | None = None) -> Trained:
    """Backbone + parameter generator trained jointly on all users' train rows."""
    torch.manual_seed(data.training.seed)
    model = build_model(data, options, variant)
    if options.warm_start:
        if base_bundle is None:
            raise ValueError("personalization.duet.warm_start needs the trained base model")
        copied = warm_start_from_base(model, base_bundle["state_dict"])
        logger.info("DUET warm start: %d tensors from the base model", len(copied))
    result = fit(model, data.train, data.validation, data.training, description=f"{name}/{data.backbone}",
                 on_epoch_end=on_epoch_end)
    logger.info("%s/%s: best epoch %d", name, data.backbone, result.best_epoch)
    return trained(model_bundle(model, name, {"best_epoch": result.best_epoch, "options": options.model_dump()}), result)


@torch.inference_mode()
def personalize(bundle: dict[str, Any], devices: Devices, options: DuetOptions,
                variant: dict[str, Any]) -> Personalization:
    """Each device's head generated in the cloud from its current window and sent; the device
    scores its candidates with its static model and the head it received."""
    model = load_model(bundle)
    if not isinstance(model.head, ParameterGenerator):
        raise ValueError("duet personalisation needs a model with a parameter generator (method_training)")
    return personalize_with_messages(model, devices, options.batch_devices, options.latency_devices,
                                     options.latency_batches)

