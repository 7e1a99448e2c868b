"""A device's request to the head generator: its history as raw item ids, most recent last.

Ids come as the dataset declares them (``ids: integer | string``): integers for MovieLens
(:class:`HistoryRequest`), strings for a string-keyed log such as Amazon's ASINs
(:class:`StringHistoryRequest`).

Policy (each case counted in the answer, so a client can see what was done):

- not a list of ids of the dataset's type (for integer ids: a string, a float, a nested
  list, ``null``, a boolean; for string ids: a number, a nested list, ``null``): refused
  (400) by the strict validation, naming the request and the value;
- no requests at all: refused (400);
- longer than ``MAX_HISTORY`` ids: refused (400); the server refuses a body over 64 KiB
  (413) or nested too deep (400) before parsing it (:mod:`.app`);
- longer than ``max_seq_len``: the most recent ``max_seq_len`` items are kept
  (``truncated`` says how many were dropped);
- unknown item ids (never seen in training): dropped (``unknown_items``);
- empty, or empty once unknown ids are dropped: answered with the model's static head,
  the cold-start fallback (``cold_start`` = 1).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pydantic

from .encodings import EncodedTensor, check_encoding


# Ids a history may hold: far past any model's window (the most recent max_seq_len are
# kept), short enough that a request costs the server no more than a few of its own.
MAX_HISTORY = 1000


def check_history(history: list) -> list:
    if len(history) > MAX_HISTORY:
        raise ValueError(f"history of {len(history):,} ids; at most {MAX_HISTORY:,} (the model reads the most recent ones)")
    return history


class HistoryRequest(pydantic.BaseModel):
    """One request: the device's history, and how the answer's message is encoded (float32
    unless asked). Strict: ``"5"``, ``5.0`` and ``true`` are not ids."""

    model_config = pydantic.ConfigDict(strict=True, extra="forbid")
    history: list[int]
    # str, not a Literal: MLflow turns these type hints into the model's signature, and
    # takes no Literal; the validator below holds the choice.
    encoding: str = "float32"

    _known_encoding = pydantic.field_validator("encoding")(check_encoding)
    _bounded_history = pydantic.field_validator("history")(check_history)


class StringHistoryRequest(pydantic.BaseModel):
    """One request of a string-keyed dataset. Strict: ``5`` is not the id ``"5"``."""

    model_config = pydantic.ConfigDict(strict=True, extra="forbid")
    history: list[str]
    encoding: str = "float32"

    _known_encoding = pydantic.field_validator("encoding")(check_encoding)
    _bounded_history = pydantic.field_validator("history")(check_history)


class HeadAnswer(pydantic.BaseModel):
    """One answer: the head's message (named tensors in the requested encoding,
    :mod:`.encodings`) and what the policy did to the request."""

    encoding: str
    message: dict[str, EncodedTensor]
    unknown_items: int
    truncated: int
    cold_start: int
    model_version: str


class RequestError(ValueError):
    """A request that cannot be answered; the message says what is wrong with it."""


@dataclass
class ParsedRequests:
    history: np.ndarray  # (B, max_seq_len) item indices, 0-padded on the left
    unknown_items: np.ndarray  # (B,) ids dropped as unknown
    truncated: np.ndarray  # (B,) oldest items dropped beyond max_seq_len
    cold_start: np.ndarray  # (B,) 1 where nothing known remains: the static head answers


def parse_histories(histories: Sequence[Sequence[Hashable]], item_index: Mapping[Hashable, int],
                    max_seq_len: int) -> ParsedRequests:
    """Validated raw histories (one per request) -> padded item-index rows and what the policy did."""
    if len(histories) == 0:
        raise RequestError("no requests: send at least one history")
    rows = np.zeros((len(histories), max_seq_len), dtype=np.int64)
    unknown = np.zeros(len(histories), dtype=np.int64)
    truncated = np.zeros(len(histories), dtype=np.int64)
    for number, ids in enumerate(histories):
        known = [item_index[i] for i in ids if i in item_index]
        unknown[number] = len(ids) - len(known)
        truncated[number] = max(0, len(known) - max_seq_len)
        kept = known[-max_seq_len:]
        if kept:
            rows[number, max_seq_len - len(kept):] = kept
    return ParsedRequests(rows, unknown, truncated, (rows == 0).all(axis=1).astype(np.int64))
