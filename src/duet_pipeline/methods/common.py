"""What every personalisation method declares, takes and returns."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import torch

from duet_pipeline.parameters import Block
from duet_pipeline.training.models import CloudData, Trained
from duet_pipeline.samples import SampleTensors

__all__ = ["CloudData", "Devices", "MethodSpec", "Personalization", "References", "Trained",
           "device_ms_per_candidate", "latency_percentiles",
           "spread_evenly"]

# AUC references (PROTOCOL section 6): variant -> dataset -> backbone -> test AUC.
References = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class MethodSpec:
    """What a method module declares about itself (as its module-level ``SPEC``).

    - ``variants``: every method name the module provides, with the settings that make
      it (read by the module), e.g. ``{"duet+swa": {"swa": True, ...}}``. Two keys are
      the registry's: ``"model"`` names a cloud model several variants read from one
      training (DCCL's ``"dccl"``), ``"on_device"`` overrides the spec's for the variant.
    - ``cloud_model``: ``"base"`` = it uses the shared base model as trained by
      umn_training; ``"own"`` = the module's ``train`` is its own cloud recipe.
    - ``on_device``: ``"nothing"`` (the shipped model as is), ``"receives"`` (the cloud
      computes something per device and sends it), ``"trains"`` (the device trains on
      its own rows).
    - ``block``: the parameter block ``personalization.<block>`` it reads, parsed by
      ``options`` (None: it reads none).
    - ``reads_own_rows``: whether personalisation needs the devices' own train rows.
    - ``order``: position in tables; ``baseline``: the method others are compared to.
    """

    variants: dict[str, dict[str, Any]]
    cloud_model: Literal["base", "own"]
    on_device: Literal["nothing", "receives", "trains"]
    description: str
    block: str | None = None
    options: type[Block] | None = None
    reads_own_rows: bool = False
    order: int = 100
    baseline: bool = False
    paper_auc: References = field(default_factory=dict)
    reproduction_auc: References = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.block is None) != (self.options is None):
            raise ValueError("a method declares both its parameter block and its options model, or neither")


@dataclass
class Devices:
    """The simulated devices: one per user, with its candidates and its own past rows.

    ``candidates`` are the rows to score (test: 1 positive + 99 negatives per user,
    all sharing the device's current history window); ``own_rows`` are the device's
    training rows, which only on-device fine-tuning reads (None where unused).
    """

    candidates: SampleTensors
    own_rows: SampleTensors | None = None

    def users(self) -> torch.Tensor:
        return torch.unique(self.candidates.user)

    def current_histories(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, history) with each device's current window (its first candidate row's)."""
        users, first = np.unique(self.candidates.user.numpy(), return_index=True)
        return torch.from_numpy(users), self.candidates.history[torch.from_numpy(first)]


@dataclass
class Personalization:
    scores: np.ndarray  # one logit per candidate row, in row order
    report: dict[str, float] = field(default_factory=dict)


def latency_percentiles(call: Callable[[], object], repeats: int) -> dict[str, float]:
    """p50 and p99 wall time of ``call`` in milliseconds over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def spread_evenly(count: int, total: int) -> np.ndarray:
    """Positions of ``count`` of ``total`` items spread evenly over them (at most ``total``):
    the devices a cost or a check is measured on stand for all of them."""
    return np.linspace(0, total - 1, min(count, total)).astype(int)


def device_ms_per_candidate(score_device: Callable[[int], int], devices: int) -> float:
    """The device's compute: median over ``devices`` devices of the wall time of
    ``score_device(k)`` (device k scores its candidates and returns how many), per candidate."""
    times = []
    for index in range(devices):
        started = time.perf_counter()
        candidates = score_device(index)
        times.append((time.perf_counter() - started) * 1000 / max(candidates, 1))
    return float(np.median(times)) if times else float("nan")
