"""The device's half as ONNX: its static model (item table, backbone, target tower) and
the head application, taking the head the cloud sent as inputs.

``DeviceScorer(history (1, L), candidates (N,), w1, b1, w2, b2) -> scores (N,)``: one
device, one received head for all its candidates. Exported with ``torch.onnx.export``
and run with onnxruntime, so a device needs neither PyTorch nor Python's model code.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from duet_pipeline.methods.common import Devices, spread_evenly
from duet_pipeline.models.layers import HeadWeights, apply_head
from duet_pipeline.models.recommender import Recommender, load_model
from duet_pipeline.training.loop import predict
from duet_pipeline.samples import SampleTensors
from duet_pipeline.training.tensors import RowsByUser

INPUTS = ("history", "candidates", "w1", "b1", "w2", "b2")


class DeviceScorer(nn.Module):
    """The static part of a DUET model plus the head application (no generator)."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model.eval()
        # Runs of identical histories are found with data-dependent shapes; on the device
        # every candidate reads the one history, so each row is encoded as it comes.
        self.model.dedupe_histories = False

    def forward(self, history: torch.Tensor, candidates: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor,
                w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
        rows = history.expand(candidates.shape[0], history.shape[1])  # (N, L): the device's window per candidate
        user, target_vector = self.model.head_inputs(rows, candidates)
        return (apply_head(user, HeadWeights(w1, b1, w2, b2)) * target_vector).sum(dim=-1)


def example_inputs(model: Recommender, candidates: int = 100) -> tuple[torch.Tensor, ...]:
    d, length = model.config.dim, model.config.max_seq_len
    history = torch.arange(1, length + 1).clamp(max=model.config.num_items).unsqueeze(0)
    items = torch.arange(1, candidates + 1) % model.config.num_items + 1
    return (history, items, torch.eye(d), torch.zeros(d), torch.eye(d), torch.zeros(d))


def export_device_model(bundle: dict[str, Any], path: Path) -> int:
    """The bundle's device half written to ``path`` as ONNX; returns the file's size in bytes."""
    scorer = DeviceScorer(load_model(bundle)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(scorer, example_inputs(scorer.model), str(path), input_names=list(INPUTS),
                          output_names=["scores"], dynamo=True, external_data=False, verbose=False,
                          dynamic_shapes={"history": None, "candidates": {0: torch.export.Dim("candidates", min=1)},
                                          "w1": None, "b1": None, "w2": None, "b2": None})
    return path.stat().st_size


class OnnxDevice:
    """A device running the exported model with onnxruntime (one thread, as a phone would)."""

    def __init__(self, path: Path | str) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def score(self, history: np.ndarray, candidates: np.ndarray, head: HeadWeights | tuple[np.ndarray, ...]) -> np.ndarray:
        """Scores of ``candidates`` (N,) for a device with ``history`` (L,) and its received head."""
        tensors = head.tensors() if isinstance(head, HeadWeights) else head
        feeds = {"history": np.asarray(history, dtype=np.int64).reshape(1, -1),
                 "candidates": np.asarray(candidates, dtype=np.int64)}
        feeds.update({name: np.asarray(t, dtype=np.float32) for name, t in zip(INPUTS[2:], tensors)})
        return self.session.run(["scores"], feeds)[0]


def check_device_model(path: Path, bundle: dict[str, Any], test: SampleTensors, devices: int = 0) -> dict[str, float]:
    """The ONNX device model on the test devices (``devices`` of them spread over all; 0:
    every one), each scoring its candidates with the head generated from its window,
    against the PyTorch model's scores: the largest difference, the file's size and the
    scoring time per device."""
    model = load_model(bundle)
    users, windows = Devices(test).current_histories()
    if devices:
        chosen = spread_evenly(devices, len(users))
        users, windows = users[chosen], windows[chosen]
    test = test.for_users(users)
    expected = predict(model, test)
    with torch.inference_mode():
        heads = model.head_weights(windows)
    device = OnnxDevice(path)
    rows_of = RowsByUser(test.user)
    largest, times = 0.0, []
    for k, user in enumerate(users.tolist()):
        rows = rows_of(user)
        head = tuple(t[k].numpy() for t in heads.tensors())
        started = time.perf_counter()
        scores = device.score(windows[k].numpy(), test.target[rows].numpy(), head)
        times.append((time.perf_counter() - started) * 1000)
        largest = max(largest, float(np.abs(scores - expected[rows.numpy()]).max()))
    return {"onnx_bytes": float(path.stat().st_size), "devices": float(len(users)), "max_abs_difference": largest,
            "candidates_per_device": float(len(test) / max(len(users), 1)),
            "device_ms_p50": float(np.percentile(times, 50)), "device_ms_p99": float(np.percentile(times, 99))}
