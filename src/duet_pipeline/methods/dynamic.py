"""The dynamic-weight family's common frame (issue 11): one cloud recipe, one serving
simulation and one cost report for every method whose model has a personalised head
(:mod:`duet_pipeline.models.heads`).

A family member is a method module (``lhuc.py``, ``ppnet.py``, ...) holding its ``SPEC``
and its options (its head class lives in ``models/heads/``), which derive from :class:`DynamicOptions`; it
re-exports ``train``, ``needs_base_model`` and ``personalize`` from here.

Like DUET, each trains jointly with the backbone in the cloud, from scratch, under
PROTOCOL section 4. Serving, per device: the cloud runs the head's ``request`` on the
device's current window and sends the result (the payload); the device scores its
candidates with the backbone and the head's device half.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from pydantic import Field

from duet_pipeline.models.recommender import Recommender, base_model_config, load_model, model_bundle
from duet_pipeline.parameters import Block
from duet_pipeline.training.loop import fit
from duet_pipeline.training.models import CloudData, EpochCallback, Trained, trained

from .common import Devices, Personalization
from .messaging import personalize_with_messages

logger = logging.getLogger(__name__)


class ServingOptions(Block):
    """How the cost of serving is measured (the ``serving`` sub-block)."""

    batch_devices: int = Field(ge=1)  # devices whose requests the cloud answers in one call
    latency_devices: int = Field(ge=1)  # devices timed one request at a time (p50 / p99)
    latency_batches: int = Field(ge=1)  # repeats of the batched timing


class DynamicOptions(Block):
    """Options every family member has; a member adds its head's options."""

    serving: ServingOptions

    def head_options(self) -> dict[str, Any]:
        """The head class's keyword arguments: every option but ``serving``."""
        return self.model_dump(exclude={"serving"})


def build_model(data: CloudData, options: DynamicOptions, variant: dict[str, Any]) -> Recommender:
    """The untrained model: the base model's backbone with the variant's personalised head."""
    config = base_model_config(data.num_items, data.train.history.shape[1], data.backbone, data.model, data.backbones)
    config.personal_head = {"name": variant["head"], **options.head_options()}
    model = Recommender(config)
    model.head.prepare(data.train)
    return model


def needs_base_model(options: DynamicOptions, variant: dict[str, Any]) -> bool:
    """Every member trains from scratch (cold start, as DUET's default)."""
    return False


def train(name: str, data: CloudData, options: DynamicOptions, variant: dict[str, Any],
          base_bundle: dict[str, Any] | None, on_epoch_end: EpochCallback | None = None) -> Trained:
    """Backbone and personalised head trained jointly on all users' train rows."""
    torch.manual_seed(data.training.seed)
    model = build_model(data, options, variant)
    result = fit(model, data.train, data.validation, data.training, description=f"{name}/{data.backbone}",
                 on_epoch_end=on_epoch_end)
    logger.info("%s/%s: best epoch %d", name, data.backbone, result.best_epoch)
    return trained(model_bundle(model, name, {"best_epoch": result.best_epoch, "options": options.model_dump()}),
                   result)


@torch.inference_mode()
def personalize(bundle: dict[str, Any], devices: Devices, options: DynamicOptions,
                variant: dict[str, Any]) -> Personalization:
    serving = options.serving
    return personalize_with_messages(load_model(bundle), devices, serving.batch_devices, serving.latency_devices,
                                     serving.latency_batches)

