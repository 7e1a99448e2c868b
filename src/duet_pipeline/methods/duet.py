"""DUET: the cloud generates each device's head from its real-time history; no training.

Simulation of one request per device: the cloud runs the parameter generator on the
device's current history window and sends the head's weights (the payload); the
device scores its candidates with its static backbone and the received head.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from duet_pipeline.models.layers import HeadWeights
from duet_pipeline.models.recommender import Recommender

from .common import Devices, Personalization, latency_percentiles


def generate_heads(model: Recommender, histories: torch.Tensor, batch_size: int = 1024) -> HeadWeights:
    """Cloud side: one generated head per history window (B, L)."""
    if not model.generates_heads:
        raise ValueError("duet personalisation needs a model with a parameter generator (ppg_training)")
    parts = [model.head_weights(histories[start : start + batch_size]) for start in range(0, len(histories), batch_size)]
    return HeadWeights(*(torch.cat(tensors) for tensors in zip(*(p.tensors() for p in parts))))


def heads_for_rows(heads: HeadWeights, device_of_row: torch.Tensor) -> HeadWeights:
    """Each candidate row gets the head its device received."""
    return HeadWeights(*(t[device_of_row] for t in heads.tensors()))


@torch.inference_mode()
def personalize(model: Recommender, devices: Devices, options: dict[str, Any]) -> Personalization:
    model.eval()
    users, histories = devices.current_histories()
    batch_size = int(options.get("batch_devices", 256))
    started = time.perf_counter()
    heads = generate_heads(model, histories, batch_size)
    batched_seconds = time.perf_counter() - started

    # Device side: scores with the static backbone and the received head only.
    candidates = devices.candidates
    device_of_row = torch.from_numpy(np.searchsorted(users.numpy(), candidates.user.numpy()))
    scores = []
    for start in range(0, len(candidates), 16384):
        rows = slice(start, start + 16384)
        scores.append(model.score(candidates.history[rows], candidates.target[rows],
                                  heads_for_rows(heads, device_of_row[rows])))

    probes = histories[: int(options.get("latency_devices", 200))]
    single = iter(range(len(probes)))
    one_at_a_time = latency_percentiles(
        lambda: model.head_weights(probes[next(single)].unsqueeze(0)), len(probes)
    )
    batch = histories[:batch_size]
    batched = latency_percentiles(lambda: model.head_weights(batch), int(options.get("latency_batches", 20)))
    report = {
        "devices": float(len(users)),
        "generation_ms_p50_single": one_at_a_time["p50_ms"],
        "generation_ms_p99_single": one_at_a_time["p99_ms"],
        "generation_ms_p50_per_device_batched": batched["p50_ms"] / len(batch),
        "generation_ms_p99_per_device_batched": batched["p99_ms"] / len(batch),
        "devices_per_second": len(users) / batched_seconds,
        "payload_bytes": float(heads.payload_bytes()),
        "seconds_per_device": batched_seconds / len(users),
    }
    return Personalization(torch.cat(scores).numpy(), report)
