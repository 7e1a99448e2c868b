"""A method's device half as ONNX: its static model (item table, backbone, target tower)
and its head's device half, taking the message the cloud sent as named inputs.

``DeviceScorer(history (1, L), candidates (N,), message) -> scores (N,)``: one device, one
received message for all its candidates; the message's tensors are inputs named as the head
names them (DUET: ``w1, b1, w2, b2``; LHUC: ``scale1, scale2``; ...), each with a leading axis
of 1; a head that sends nothing (base, CAN) takes history and candidates only. Exported with
``torch.onnx.export`` and run with onnxruntime, so a device needs neither PyTorch nor
Python's model code.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from duet_pipeline.methods.common import Devices, spread_evenly
from duet_pipeline.models.recommender import Recommender, load_model
from duet_pipeline.samples import SampleTensors
from duet_pipeline.training.loop import predict
from duet_pipeline.training.tensors import RowsByUser


class DeviceScorer(nn.Module):
    """The device's half of a model: its static part and its head's device half."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model.eval()
        # Runs of identical histories are found with data-dependent shapes; on the device
        # every candidate reads the one history, given as such (row_of all 0).
        self.model.dedupe_histories = False
        self.names = self.model.message_names()

    def forward(self, history: torch.Tensor, candidates: torch.Tensor, message: dict[str, torch.Tensor]) -> torch.Tensor:
        row_of = torch.zeros_like(candidates)
        return self.model.score(history, candidates, row_of, message)


def example_inputs(model: Recommender, candidates: int = 100) -> tuple[torch.Tensor, ...]:
    length = model.config.max_seq_len
    history = torch.arange(1, length + 1).clamp(max=model.config.num_items).unsqueeze(0)
    items = torch.arange(1, candidates + 1) % model.config.num_items + 1
    with torch.inference_mode():
        sent = model.message(history)
    return (history, items, {name: t.clone() for name, t in sent.items()})


def export_device_model(bundle: dict[str, Any], path: Path) -> int:
    """The bundle's device half written to ``path`` as ONNX; returns the file's size in bytes."""
    scorer = DeviceScorer(load_model(bundle)).eval()
    names = ["history", "candidates", *scorer.names]
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        history, candidates, message = example_inputs(scorer.model)
        torch.onnx.export(scorer, (history, candidates), str(path), kwargs={"message": message}, input_names=names,
                          output_names=["scores"], dynamo=True, external_data=False, verbose=False,
                          dynamic_shapes=({"history": None, "candidates": {0: torch.export.Dim("candidates", min=1)},
                                           "message": dict.fromkeys(scorer.names)}))
    return path.stat().st_size


class OnnxDevice:
    """A device running the exported model with onnxruntime (one thread, as a phone would)."""

    def __init__(self, path: Path | str) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()][2:]

    def score(self, history: np.ndarray, candidates: np.ndarray, message: dict[str, np.ndarray]) -> np.ndarray:
        """Scores of ``candidates`` (N,) for a device with ``history`` (L,) and the message it
        received (one request's tensors, decoded to float32)."""
        feeds = {"history": np.asarray(history, dtype=np.int64).reshape(1, -1),
                 "candidates": np.asarray(candidates, dtype=np.int64)}
        feeds.update({name: np.asarray(message[name], dtype=np.float32)[None] for name in self.names})
        return self.session.run(["scores"], feeds)[0]


def check_device_model(path: Path, bundle: dict[str, Any], test: SampleTensors, devices: int = 0) -> dict[str, float]:
    """The ONNX device model on the test devices (``devices`` of them spread over all; 0:
    every one), each scoring its candidates with the message its window gets,
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
        sent = model.message(windows)
    device = OnnxDevice(path)
    rows_of = RowsByUser(test.user)
    largest, times = 0.0, []
    for k, user in enumerate(users.tolist()):
        rows = rows_of(user)
        message = {name: t[k].numpy() for name, t in sent.items()}
        started = time.perf_counter()
        scores = device.score(windows[k].numpy(), test.target[rows].numpy(), message)
        times.append((time.perf_counter() - started) * 1000)
        largest = max(largest, float(np.abs(scores - expected[rows.numpy()]).max()))
    return {"onnx_bytes": float(path.stat().st_size), "devices": float(len(users)), "max_abs_difference": largest,
            "candidates_per_device": float(len(test) / max(len(users), 1)),
            "device_ms_p50": float(np.percentile(times, 50)), "device_ms_p99": float(np.percentile(times, 99))}
