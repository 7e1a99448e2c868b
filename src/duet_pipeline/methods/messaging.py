"""The device-cloud loop of a method whose cloud sends each device a message (DUET and the
dynamic-weight family), simulated in process: the cloud runs the head's cloud half on every
device's current window (in batches, and one at a time for the latency), each device scores
its candidates with the backbone and the head's device half fed what it received; the cost
report prices the payload, the device's extra parameters and its time per candidate.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from duet_pipeline.models.heads.base import Head
from duet_pipeline.models.recommender import Recommender, consecutive_runs

from .common import Devices, Personalization, device_ms_per_candidate, latency_percentiles


def messages(model: Recommender, histories: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Cloud side: what the cloud sends for each history window (B, L), in batches."""
    parts = [model.message(histories[start : start + batch_size]) for start in range(0, len(histories), batch_size)]
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
        scores.append(model.score(distinct, part.target, row_of, {k: v[device] for k, v in sent.items()}))
    return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


def score_one_device(model: Recommender, devices: Devices, users: torch.Tensor, sent: dict[str, torch.Tensor],
                     index: int) -> int:
    """Device ``users[index]`` alone scores its candidates with what it received; returns their number."""
    mine = devices.candidates.rows(torch.nonzero(devices.candidates.user == users[index]).squeeze(1))
    score_devices(model, Devices(mine), users[index : index + 1], {k: v[index : index + 1] for k, v in sent.items()})
    return len(mine)


def device_extra_bytes(head: Head) -> int:
    """Bytes of parameters the device holds beyond the base model."""
    return sum(p.numel() * p.element_size() for p in head.device_parameters())


def personalize_with_messages(model: Recommender, devices: Devices, batch_devices: int, latency_devices: int,
                              latency_batches: int) -> Personalization:
    """Scores of every candidate row and the cost report (module docstring)."""
    users, histories = devices.current_histories()
    started = time.perf_counter()
    sent = messages(model, histories, batch_devices)
    batched_seconds = time.perf_counter() - started
    scores = score_devices(model, devices, users, sent)

    probes = histories[:latency_devices]
    single = iter(range(len(probes)))
    one_at_a_time = latency_percentiles(lambda: model.message(probes[next(single)].unsqueeze(0)), len(probes))
    batch = histories[:batch_devices]
    batched = latency_percentiles(lambda: model.message(batch), latency_batches)
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
            lambda k: score_one_device(model, devices, users, sent, k), min(latency_devices, len(users))),
        "head_reads_candidate": float(model.head.reads_candidate),
        "seconds_per_device": batched_seconds / len(users),
    }
    return Personalization(scores, report)