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
import time
from typing import Any

import numpy as np
import torch
from pydantic import Field

from duet_pipeline.models.heads.base import PersonalHead
from duet_pipeline.models.recommender import (
    Recommender,
    base_model_config,
    consecutive_runs,
    load_model,
    model_bundle,
)
from duet_pipeline.parameters import Block
from duet_pipeline.training.loop import fit
from duet_pipeline.training.models import CloudData, EpochCallback, Trained, trained

from .common import (
    Devices,
    Personalization,
    device_ms_per_candidate,
    latency_percentiles,
)

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


def requests(model: Recommender, histories: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Cloud side: what the cloud sends for each history window (B, L), in batches."""
    parts = [model.request(histories[start : start + batch_size]) for start in range(0, len(histories), batch_size)]
    return {key: torch.cat([part[key] for part in parts]) for key in (parts[0] if parts else {})}


def payload_bytes(sent: dict[str, torch.Tensor]) -> int:
    """Bytes one device receives: one request's tensors."""
    return sum(t[0].numel() * t.element_size() for t in sent.values())


def score_devices(model: Recommender, devices: Devices, users: torch.Tensor,
                  sent: dict[str, torch.Tensor], chunk: int = 16384) -> np.ndarray:
    """Device side: every candidate row scored with what its device received."""
    candidates = devices.candidates
    scores = []
    for start in range(0, len(candidates), chunk):
        part = candidates.rows(slice(start, start + chunk))
        distinct, row_of = consecutive_runs(part.history)
        first_rows = torch.searchsorted(row_of, torch.arange(len(distinct)))
        device = torch.from_numpy(np.searchsorted(users.numpy(), part.user[first_rows].numpy()))
        scores.append(model.personal_score(distinct, part.target, row_of, {k: v[device] for k, v in sent.items()}))
    return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


def score_one_device(model: Recommender, devices: Devices, users: torch.Tensor, sent: dict[str, torch.Tensor],
                     index: int) -> int:
    """Device ``users[index]`` alone scores its candidates with what it received; returns their number."""
    mine = devices.candidates.rows(torch.nonzero(devices.candidates.user == users[index]).squeeze(1))
    score_devices(model, Devices(mine), users[index : index + 1], {k: v[index : index + 1] for k, v in sent.items()})
    return len(mine)


def device_extra_bytes(head: PersonalHead) -> int:
    """Bytes of parameters the device holds beyond the base model."""
    return sum(p.numel() * p.element_size() for p in head.device_parameters())


@torch.inference_mode()
def personalize(bundle: dict[str, Any], devices: Devices, options: DynamicOptions,
                variant: dict[str, Any]) -> Personalization:
    model = load_model(bundle)
    serving = options.serving
    users, histories = devices.current_histories()
    started = time.perf_counter()
    sent = requests(model, histories, serving.batch_devices)
    batched_seconds = time.perf_counter() - started
    scores = score_devices(model, devices, users, sent)

    probes = histories[: serving.latency_devices]
    single = iter(range(len(probes)))
    one_at_a_time = latency_percentiles(lambda: model.request(probes[next(single)].unsqueeze(0)), len(probes))
    batch = histories[: serving.batch_devices]
    batched = latency_percentiles(lambda: model.request(batch), serving.latency_batches)
    report = {
        "devices": float(len(users)),
        "generation_ms_p50_single": one_at_a_time["p50_ms"],
        "generation_ms_p99_single": one_at_a_time["p99_ms"],
        "generation_ms_p50_per_device_batched": batched["p50_ms"] / max(len(batch), 1),
        "generation_ms_p99_per_device_batched": batched["p99_ms"] / max(len(batch), 1),
        "devices_per_second": len(users) / batched_seconds,
        "payload_bytes": float(payload_bytes(sent)),
        "device_extra_bytes": float(device_extra_bytes(model.head)),
        "device_ms_per_candidate": device_ms_per_candidate(
            lambda k: score_one_device(model, devices, users, sent, k), min(serving.latency_devices, len(users))),
        "head_reads_candidate": float(model.head.reads_candidate),
        "seconds_per_device": batched_seconds / len(users),
    }
    return Personalization(scores, report)
