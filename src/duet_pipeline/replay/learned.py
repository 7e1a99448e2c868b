"""The learned request policy: a small on-device model that predicts whether the head a
device holds will mis-rank its next click, as IntellectReq (WWW 2024) does.

What it reads is what the device has: how far its window has drifted from the one its
head came from, how many clicks ago that was, and how well the head ranked the clicks
since (the device scored those candidates and saw which one was clicked). Its target, on
the train period only (the replay split's ``policy`` streams): the held head ranks the
click below a fresh head's ranking of it. It is trained in the cloud with the method's
own model and sent to the device with it; its threshold comes from the request budget.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from duet_pipeline.parameters import Block

from .stale import StaleScores

FEATURES = ("drift", "clicks_since_head", "last_seen_auc", "mean_seen_auc", "min_seen_auc")


class LearnedPolicyParams(Block):
    """``replay.learned``: the policy model and its training."""

    hidden: int = Field(ge=1)
    epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)


def decision_features(drift: np.ndarray, since: np.ndarray, seen: np.ndarray, length: int) -> np.ndarray:
    """(N, F) features of N decisions: the window's drift from the head's, the clicks
    since the head (over R), and the AUC of the candidate sets the head has scored since
    (``seen``: (N, R), NaN past the ones seen; at least one is seen at every decision)."""
    counts = (~np.isnan(seen)).sum(axis=1)
    last = seen[np.arange(len(seen)), np.maximum(counts - 1, 0)]
    with warnings.catch_warnings():  # a padded step's row has nothing seen: NaN, never a decision
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([drift, since / length, last, np.nanmean(seen, axis=1), np.nanmin(seen, axis=1)],
                        axis=1).astype(np.float32)


def decision_table(stale: StaleScores) -> np.ndarray:
    """(D, R, R, F): the features of every decision (step k, holding step j's head, j < k);
    NaN elsewhere. Built with :func:`decision_features`, as a device builds its own."""
    devices, length = stale.valid.shape
    table = np.full((devices, length, length, len(FEATURES)), np.nan, dtype=np.float32)
    for k in range(1, length):
        for j in range(k):
            seen = np.full((devices, length), np.nan)
            seen[:, : k - j] = stale.set_auc[:, j:k, j]
            table[:, k, j] = decision_features(stale.drift[:, k, j], np.full(devices, k - j, dtype=np.float64),
                                               seen, length)
    return table


def decision_labels(stale: StaleScores) -> np.ndarray:
    """(D, R, R): 1 where the held head (step j's) ranks step k's click below a fresh head."""
    fresh = np.diagonal(stale.set_auc, axis1=1, axis2=2)[:, :, None]  # (D, R, 1): set_auc[d, k, k]
    return (stale.set_auc < fresh).astype(np.float32)


class RequestPolicy(nn.Module):
    """Standardised features -> MLP -> the probability that the held head mis-ranks."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.net = nn.Sequential(nn.Linear(len(mean), hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net((features - self.mean) / self.std)).squeeze(-1)


@dataclass(frozen=True)
class TrainedPolicy:
    model: RequestPolicy
    examples: int
    positive_share: float
    train_loss: float


def train_policy(stale: StaleScores, params: LearnedPolicyParams, seed: int) -> TrainedPolicy:
    """Fit the policy on every decision of the train-period streams (full batch, Adam)."""
    features = decision_table(stale)
    labels = decision_labels(stale)
    decisions = np.isfinite(features).all(axis=-1) & stale.valid[:, :, None] & ~np.isnan(stale.set_auc)
    x = torch.from_numpy(features[decisions])
    y = torch.from_numpy(labels[decisions])
    if len(x) == 0:
        raise ValueError("the policy streams hold no decision (every device has a single train-period step)")
    torch.manual_seed(seed)
    model = RequestPolicy(x.mean(dim=0), x.std(dim=0).clamp(min=1e-6), params.hidden)
    optimizer = torch.optim.Adam(model.net.parameters(), lr=params.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(params.epochs):
        optimizer.zero_grad()
        loss = loss_fn(model.net((x - model.mean) / model.std).squeeze(-1), y)
        loss.backward()
        optimizer.step()
    return TrainedPolicy(model.eval(), len(x), float(y.mean()), float(loss.detach()))


def policy_urge(model: RequestPolicy, stale: StaleScores) -> np.ndarray:
    """(D, R, R): the policy's probability at every decision (NaN where there is none)."""
    features = decision_table(stale)
    flat = features.reshape(-1, len(FEATURES))
    defined = np.isfinite(flat).all(axis=1)
    urge = np.full(len(flat), np.nan)
    with torch.inference_mode():
        urge[defined] = model(torch.from_numpy(flat[defined])).numpy()
    return urge.reshape(features.shape[:-1])


def policy_bundle(policy: TrainedPolicy) -> dict[str, Any]:
    """A picklable description of the learned policy."""
    return {"features": list(FEATURES), "hidden": policy.model.net[0].out_features,
            "state_dict": {k: v.detach().clone() for k, v in policy.model.state_dict().items()},
            "examples": policy.examples, "positive_share": policy.positive_share, "train_loss": policy.train_loss}


def load_policy(bundle: dict[str, Any]) -> RequestPolicy:
    state = bundle["state_dict"]
    model = RequestPolicy(state["mean"], state["std"], bundle["hidden"])
    model.load_state_dict(state)
    return model.eval()


def policy_bytes(model: RequestPolicy) -> int:
    """Bytes the device holds for the policy: its parameters and buffers, float32."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def export_policy(model: RequestPolicy) -> bytes:
    """The policy as an ONNX model: ``features`` (N, F) float32 -> ``request_probability`` (N,)."""
    buffer = io.BytesIO()
    example = torch.zeros(1, len(FEATURES))
    with torch.no_grad():
        program = torch.onnx.export(model.eval(), (example,), input_names=["features"],
                                    output_names=["request_probability"], dynamo=True, verbose=False,
                                    dynamic_shapes=({0: torch.export.Dim("decisions", min=1)},))
    program.save(buffer)
    return buffer.getvalue()
