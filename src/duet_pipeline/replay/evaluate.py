"""One method's replay end to end: every policy at every budget, with its costs."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from duet_pipeline.models.recommender import Recommender
from duet_pipeline.parameters import Block, parse_block

from .learned import (LearnedPolicyParams, RequestPolicy, decision_features, policy_bundle, policy_bytes,
                      policy_urge, train_policy)
from .policies import BUDGETED, POLICIES, every_k_urge, random_urge, simulate, threshold_for_budget
from .stale import StaleScores, stale_scores
from .streams import Streams

Policy = Literal["always", "never", "every-k", "random", "drift", "learned"]


class ReplayParams(Block):
    """The ``replay`` parameters (conf/base/parameters_replay.yml)."""

    policies: list[Policy] = Field(min_length=1)
    budgets: list[float] = Field(min_length=1)
    seed: int = Field(ge=0)
    batch_devices: int = Field(ge=1)
    learned: LearnedPolicyParams

    @field_validator("policies")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"a policy is listed twice; valid policies: {list(POLICIES)}")
        return value

    @field_validator("budgets")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        outside = [b for b in value if not 0 <= b <= 1]
        if outside:
            raise ValueError(f"budgets are request rates in [0, 1]; got {outside}")
        return sorted(set(value))

    @classmethod
    def from_params(cls, params: Any) -> "ReplayParams":
        return parse_block(cls, params, "replay")


@dataclass(frozen=True)
class MethodReplay:
    """One method's rows of the replay table, its learned policy and what it costs."""

    rows: pd.DataFrame
    policy: dict[str, Any] | None  # policy_bundle, where `learned` was replayed
    costs: dict[str, float]


def urges(stale: StaleScores, params: ReplayParams, learned: torch.nn.Module | None) -> dict[str, np.ndarray]:
    """Each budgeted policy's urge table (policies.py) on these streams."""
    devices, length = stale.valid.shape
    made = {"every-k": lambda: every_k_urge(devices, length), "random": lambda: random_urge(devices, length, params.seed),
            "drift": lambda: stale.drift, "learned": lambda: policy_urge(learned, stale)}
    return {name: made[name]() for name in params.policies if name in BUDGETED}


def policy_rows(method: str, stale: StaleScores, params: ReplayParams, urge: dict[str, np.ndarray]) -> pd.DataFrame:
    """Every policy at every budget: AUC, request rate, requests and bytes per device."""
    flat = np.zeros_like(stale.set_auc)
    settings = []
    for policy in params.policies:
        if policy in BUDGETED:
            settings += [(policy, budget, urge[policy], threshold_for_budget(urge[policy], stale.valid, budget))
                         for budget in params.budgets]
        else:
            settings.append((policy, np.nan, flat, -np.inf if policy == "always" else np.inf))
    rows = []
    for policy, budget, table, threshold in settings:
        outcome = simulate(table, threshold, stale.valid)
        rows.append({"method": method, "policy": policy, "budget": budget, "threshold": threshold,
                     "request_rate": outcome.request_rate, "auc": outcome.auc(stale.scores, stale.valid),
                     "requests_per_device": float(1 + outcome.requests.mean()),
                     "bytes_per_device": float((1 + outcome.requests.mean()) * stale.payload_bytes)})
    return pd.DataFrame(rows)


def decision_ms(learned: torch.nn.Module, stale: StaleScores, repeats: int = 200) -> float:
    """Median wall time of one device's decision in process: its features, then the policy."""
    length = stale.valid.shape[1]
    seen = np.full((1, length), np.nan)
    seen[0, :2] = stale.set_auc[0, 0:2, 0]
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            features = decision_features(stale.drift[:1, 2, 0], np.array([2.0]), seen, length)
            learned(torch.from_numpy(features))
            times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def replay_method(model: Recommender, method: str, streams: Streams, policy_streams: Streams | None,
                  params: ReplayParams, learned: RequestPolicy | None = None) -> MethodReplay:
    """Replay ``method``'s model on ``streams`` under every policy of ``params``; the learned
    policy is trained on ``policy_streams`` (the train period) first, unless ``learned``
    gives one already trained (a deployed one, as the device simulator replays it)."""
    started = time.perf_counter()
    stale = stale_scores(model, streams, params.batch_devices)
    costs = {"devices": float(streams.devices), "steps": float(stale.valid.sum()),
             "payload_bytes": float(stale.payload_bytes)}
    trained = None
    if "learned" in params.policies and learned is None:
        if policy_streams is None:
            raise ValueError("the learned policy needs the train-period streams (policy_samples)")
        trained = train_policy(stale_scores(model, policy_streams, params.batch_devices), params.learned, params.seed)
        learned = trained.model
        costs.update({"policy_examples": float(trained.examples), "policy_positive_share": trained.positive_share})
    if learned is not None:
        costs.update({"policy_bytes": float(policy_bytes(learned)), "policy_ms_per_decision": decision_ms(learned, stale)})
    rows = policy_rows(method, stale, params, urges(stale, params, learned))
    costs["replay_seconds"] = time.perf_counter() - started
    return MethodReplay(rows, policy_bundle(trained) if trained else None, costs)
