"""Payload encodings: how a head's message (named float32 tensors) travels to the device.

The client chooses per request; float32 is the default and exact. ``float16`` halves the
bytes (relative error at most 2^-11 per value, within float16's range). ``int8`` quarters
them, plus one float32 scale per tensor row: each row r of a tensor (a vector is one row)
is sent as ``q = round(x / s_r)`` with ``s_r = max |x_r| / 127``, so every value comes back
within ``s_r / 2`` of what was sent.

Each tensor travels as ``{"shape": [...], "data": base64, "scale": base64 | None}``,
little-endian; :func:`decode_tensor` is all a client needs (README, "Serving").
"""
from __future__ import annotations

import base64
from typing import Literal

import numpy as np
import pydantic

Encoding = Literal["float32", "float16", "int8"]
ENCODINGS: tuple[str, ...] = ("float32", "float16", "int8")
INT8_LEVELS = 127


def check_encoding(name: str) -> str:
    """``name`` if it is an encoding; else the error a request validator reports (400)."""
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}: choose one of {list(ENCODINGS)}")
    return name


class EncodedTensor(pydantic.BaseModel):
    """One tensor of a message, as sent."""

    shape: list[int]
    data: str  # base64 of the values: <f4, <f2 or int8
    scale: str | None = None  # int8: base64 of one <f4 scale per row


def _rows(values: np.ndarray) -> np.ndarray:
    """A tensor as (rows, values per row): a matrix's rows, a vector as one row."""
    return values.reshape(values.shape[0] if values.ndim > 1 else 1, -1)


def encode_tensor(values: np.ndarray, encoding: Encoding) -> EncodedTensor:
    values = np.asarray(values, dtype=np.float32)
    shape = list(values.shape)
    if encoding == "float32":
        return EncodedTensor(shape=shape, data=_b64(values.astype("<f4")))
    if encoding == "float16":
        return EncodedTensor(shape=shape, data=_b64(values.astype("<f2")))
    rows = _rows(values)
    scale = (np.abs(rows).max(axis=1) / INT8_LEVELS).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    quantised = np.clip(np.rint(rows / safe[:, None]), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return EncodedTensor(shape=shape, data=_b64(quantised), scale=_b64(scale.astype("<f4")))


def decode_tensor(tensor: EncodedTensor | dict, encoding: Encoding) -> np.ndarray:
    """A sent tensor -> float32 values of its shape: the client's side."""
    tensor = tensor if isinstance(tensor, EncodedTensor) else EncodedTensor.model_validate(tensor)
    raw = base64.b64decode(tensor.data)
    if encoding == "float32":
        values = np.frombuffer(raw, dtype="<f4")
    elif encoding == "float16":
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    else:
        scale = np.frombuffer(base64.b64decode(tensor.scale or ""), dtype="<f4")
        values = (np.frombuffer(raw, dtype=np.int8).reshape(len(scale), -1) * scale[:, None]).astype(np.float32)
    return values.reshape(tensor.shape)


def encode_message(message: dict[str, np.ndarray], encoding: Encoding) -> dict[str, EncodedTensor]:
    return {name: encode_tensor(values, encoding) for name, values in message.items()}


def decode_message(message: dict[str, EncodedTensor | dict], encoding: Encoding) -> dict[str, np.ndarray]:
    return {name: decode_tensor(tensor, encoding) for name, tensor in message.items()}


def payload_bytes(message: dict[str, EncodedTensor | dict]) -> int:
    """Bytes of values (and int8 scales) the message carries, before base64 and JSON."""
    total = 0
    for tensor in message.values():
        tensor = tensor if isinstance(tensor, EncodedTensor) else EncodedTensor.model_validate(tensor)
        total += len(base64.b64decode(tensor.data)) + (len(base64.b64decode(tensor.scale)) if tensor.scale else 0)
    return total


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")
