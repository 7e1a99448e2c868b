"""A device's request to the head generator: its history as raw item ids, most recent last.

Policy (each case counted in the answer, so a client can see what was done):

- not a list of integers (a string, a float, a nested list, ``null``): refused (400),
  naming the request's row and what was found;
- longer than ``max_seq_len``: the most recent ``max_seq_len`` items are kept
  (``truncated`` says how many were dropped);
- unknown item ids (never seen in training): dropped (``unknown_items``);
- empty, or empty once unknown ids are dropped: answered with the model's static head,
  the cold-start fallback (``cold_start`` = 1).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np


class RequestError(ValueError):
    """A request that cannot be answered; the message says what is wrong with it."""


@dataclass
class ParsedRequests:
    history: np.ndarray  # (B, max_seq_len) item indices, 0-padded on the left
    unknown_items: np.ndarray  # (B,) ids dropped as unknown
    truncated: np.ndarray  # (B,) oldest items dropped beyond max_seq_len
    cold_start: np.ndarray  # (B,) 1 where nothing known remains: the static head answers


def parse_histories(histories: Sequence[object], item_index: Mapping[int, int], max_seq_len: int) -> ParsedRequests:
    """Raw histories (one per request) -> padded item-index rows and what the policy did."""
    if len(histories) == 0:
        raise RequestError("no requests: send at least one history")
    rows = np.zeros((len(histories), max_seq_len), dtype=np.int64)
    unknown = np.zeros(len(histories), dtype=np.int64)
    truncated = np.zeros(len(histories), dtype=np.int64)
    for number, history in enumerate(histories):
        ids = _integers(history, number)
        known = [item_index[i] for i in ids if i in item_index]
        unknown[number] = len(ids) - len(known)
        truncated[number] = max(0, len(known) - max_seq_len)
        kept = known[-max_seq_len:]
        if kept:
            rows[number, max_seq_len - len(kept):] = kept
    return ParsedRequests(rows, unknown, truncated, (rows == 0).all(axis=1).astype(np.int64))


def _integers(history: object, number: int) -> list[int]:
    if isinstance(history, np.ndarray):
        history = history.tolist()
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise RequestError(f"request {number}: history must be a list of integer item ids, got {type(history).__name__}"
                           f" {_short(history)}")
    bad = [v for v in history if isinstance(v, bool) or not isinstance(v, Integral)]
    if bad:
        raise RequestError(f"request {number}: history must hold integer item ids only, got {_short(bad[0])}")
    return [int(v) for v in history]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
