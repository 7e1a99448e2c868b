"""A declared log -> interactions: every value checked, every event accounted for.

Each file of the log is read (:mod:`.readers`) and its mapped columns are typed: ids as
integers or strings, the time as epoch milliseconds (UTC), the rating as a float. The first
bad value in file order fails the ingestion with one line naming the file, the line (or
row group), the column and the value; nothing is written, so the last good
``interactions`` version stays the one loaded. Events that are fine but not wanted
(rated below ``min_rating``, exact duplicates with ``duplicates: drop``) are dropped and
counted by file and reason: for every file, read = kept + dropped.

The interactions have one row per kept event, in file order: ``user_id`` (int64; a
string-keyed log's users numbered 1..U by sorted raw id, the raw id kept as
``raw_user_id``), ``item_id`` (the raw id, int64 or string: the item index maps it),
``rating`` (float64, NaN without a rating column), ``timestamp`` (int64 epoch
milliseconds) and ``row_order`` (0..n-1, the tie-break of equal times, PROTOCOL 2.4).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .declarations import DatasetDeclaration, declaration_of
from .readers import RawDataError, RawTable, part_files, read_table

# Times must fall in [1970, 2100): a time outside is a unit mistake (milliseconds declared
# as seconds read as the year 41,000) or garbage, not an event.
MAX_TIME_MS = 4_102_444_800_000
_INTEGER = r"^\s*[0-9]{1,18}\s*$"  # no sign: Arrow's int64 cast refuses "+9"
_NUMBER = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
DROP_REASONS = ("below_min_rating", "duplicate")
ROLE_LABELS = {"user": "user id", "item": "item id", "time": "time", "rating": "rating"}


@dataclass
class FileCounts:
    """What happened to one file's events."""

    path: str
    read: int
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    @property
    def kept(self) -> int:
        return self.read - sum(self.dropped.values())


@dataclass
class Events:
    interactions: pd.DataFrame
    files: list[FileCounts]


def read_events(path: Path, declaration: DatasetDeclaration) -> Events:
    """Every file of the log at ``path`` (a file or a folder of parts), checked and typed."""
    frames, files = [], []
    for number, part in enumerate(part_files(path, declaration)):
        frame = typed_events(read_table(part, declaration), declaration)
        frames.append(frame.assign(part=number))
        files.append(FileCounts(str(part), len(frame)))
    events = pd.concat(frames, ignore_index=True)
    keep = np.ones(len(events), dtype=bool)
    if declaration.min_rating is not None:
        # NaN (no rating) compares False: such an event is below any minimum.
        low = ~(events["rating"].to_numpy() >= declaration.min_rating)
        _count(files, events["part"].to_numpy(), low, "below_min_rating")
        keep &= ~low
    if declaration.duplicates == "drop":
        repeated = events.duplicated(["user_id", "item_id", "timestamp", "rating"], keep="first").to_numpy() & keep
        _count(files, events["part"].to_numpy(), repeated, "duplicate")
        keep &= ~repeated
    interactions = events.loc[keep].drop(columns="part").reset_index(drop=True)
    if declaration.ids == "string":
        raw_users = interactions["user_id"].to_numpy(dtype=object)
        # Hashing, then sorting only the distinct ids: np.unique would sort a million strings.
        user_number, _ = pd.factorize(raw_users, sort=True)
        interactions.insert(0, "user_id", (user_number + 1).astype(np.int64), allow_duplicates=True)
        interactions.columns = ["user_id", "raw_user_id", *interactions.columns[2:]]
    interactions["row_order"] = np.arange(len(interactions), dtype=np.int64)
    return Events(interactions, files)


def _count(files: list[FileCounts], parts: np.ndarray, dropped: np.ndarray, reason: str) -> None:
    for part, count in zip(*np.unique(parts[dropped], return_counts=True)):
        files[part].dropped[reason] += int(count)


def typed_events(table: RawTable, declaration: DatasetDeclaration) -> pd.DataFrame:
    """One file's columns -> user_id, item_id, rating, timestamp; the first bad value raises."""
    problems: list[tuple[int, str, str]] = []  # (row, role, what is wrong with its value)
    ids = _integer_ids if declaration.ids == "integer" else _string_ids
    user = ids(table.columns["user"], "user", problems)
    item = ids(table.columns["item"], "item", problems)
    time = _times(table.columns["time"], declaration.time_unit, problems)
    rating = (_ratings(table.columns["rating"], declaration.rating_range, problems) if "rating" in table.columns
              else np.full(table.rows, np.nan))
    if problems:
        row, role, what = min(problems)
        column = declaration.mapped_columns()[role]
        line = table.line_of(row)
        raise RawDataError(f"{table.path}: {table.where(row)}: column {column!r} ({ROLE_LABELS[role]}): {what}",
                           path=table.path, line=line)
    if table.pending is not None:  # the file's shape goes wrong after its last row, all of them good
        raise table.pending
    return pd.DataFrame({"user_id": user, "item_id": item, "rating": rating, "timestamp": time})


def _first(mask: pa.Array | np.ndarray) -> int | None:
    """The first row where ``mask`` holds (a null counts), or None."""
    mask = np.asarray(pc.fill_null(mask, True)) if isinstance(mask, (pa.Array, pa.ChunkedArray)) else mask
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _flag(problems: list, mask, role: str, describe: Callable[[int], str]) -> None:
    row = _first(mask)
    if row is not None:
        problems.append((row, role, describe(row)))


def _show(values: pa.Array, row: int) -> str:
    value = values[row].as_py()
    return repr(value if not isinstance(value, str) or len(value) <= 60 else value[:60] + "...")


def _is_text(values: pa.Array) -> bool:
    return pa.types.is_string(values.type) or pa.types.is_large_string(values.type)


def _integer_ids(values: pa.Array, role: str, problems: list) -> np.ndarray:
    label = ROLE_LABELS[role]
    if _is_text(values):
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0)
        _flag(problems, empty, role, lambda row: f"empty {label}")
        bad = pc.and_(pc.invert(pc.match_substring_regex(values, _INTEGER)), pc.invert(empty))
        _flag(problems, bad, role, lambda row: f"{label} {_show(values, row)} is not a non-negative integer "
                                               "(declare ids: string for ids that are not)")
        cleaned = pc.if_else(pc.match_substring_regex(values, _INTEGER), pc.utf8_trim_whitespace(values), "0")
        return np.asarray(pc.cast(cleaned, pa.int64()))
    if pa.types.is_integer(values.type):
        _flag(problems, pc.is_null(values), role, lambda row: f"empty {label}")
        numbers = np.asarray(pc.fill_null(values, 0).cast(pa.int64()))
        _flag(problems, numbers < 0, role, lambda row: f"negative {label} {numbers[row]}")
        return numbers
    problems.append((0, role, f"the column holds {values.type}, not ids (declared ids: integer)"))
    return np.zeros(len(values), dtype=np.int64)


def _string_ids(values: pa.Array, role: str, problems: list) -> np.ndarray:
    label = ROLE_LABELS[role]
    if pa.types.is_integer(values.type):
        values = values.cast(pa.string())
    if not _is_text(values):
        problems.append((0, role, f"the column holds {values.type}, not ids (declared ids: string)"))
        return np.zeros(len(values), dtype=object)
    _flag(problems, pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0), role,
          lambda row: f"empty {label}")
    return np.asarray(pc.fill_null(values, ""), dtype=object)


def _numbers(values: pa.Array, role: str, what: str, problems: list) -> np.ndarray:
    """A column of numbers (text or numeric) as float64; a non-number, empty or not finite, is flagged."""
    if _is_text(values):
        ok = pc.match_substring_regex(values, _NUMBER)
        _flag(problems, pc.invert(ok), role, lambda row: f"{what} {_show(values, row)} is not a number")
        numbers = np.asarray(pc.cast(pc.if_else(ok, pc.utf8_trim_whitespace(values), "0"), pa.float64()))
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        _flag(problems, pc.is_null(values), role, lambda row: f"empty {what}")
        numbers = np.asarray(pc.fill_null(values, 0).cast(pa.float64()))
    else:
        problems.append((0, role, f"the column holds {values.type}, not numbers"))
        return np.zeros(len(values))
    _flag(problems, ~np.isfinite(numbers), role, lambda row: f"{what} {_show(values, row)} is not a finite number")
    return numbers


def _times(values: pa.Array, unit: str, problems: list) -> np.ndarray:
    if unit == "iso8601":
        milliseconds = _iso_times(values, problems)
    elif _is_text(values) or pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        scale = 1000 if unit == "s" else 1
        if pa.types.is_integer(values.type):  # exact: no detour through float64
            _flag(problems, pc.is_null(values), "time", lambda row: "empty time")
            milliseconds = np.asarray(pc.fill_null(values, 0).cast(pa.int64())) * scale
        else:
            milliseconds = np.round(_numbers(values, "time", "time", problems) * scale).astype(np.int64)
    else:
        problems.append((0, "time", f"the column holds {values.type}; declared time_unit {unit} needs numbers"))
        return np.zeros(len(values), dtype=np.int64)
    outside = (milliseconds < 0) | (milliseconds >= MAX_TIME_MS)
    _flag(problems, outside, "time", lambda row: f"time {_show(values, row)} is out of range: as {_UNIT_NAMES[unit]} "
                                                 "it is not between 1970 and 2100")
    return milliseconds


_UNIT_NAMES = {"s": "epoch seconds", "ms": "epoch milliseconds", "iso8601": "ISO 8601"}


def _iso_times(values: pa.Array, problems: list) -> np.ndarray:
    if pa.types.is_timestamp(values.type):
        _flag(problems, pc.is_null(values), "time", lambda row: "empty time")
        stamps = pd.Series(values.to_pandas())
        stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    elif _is_text(values):
        text = pd.Series(np.asarray(pc.fill_null(values, ""), dtype=object))
        # Naive times are UTC; a zone or offset, where given, is honoured.
        stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        _flag(problems, stamps.isna().to_numpy(), "time",
              lambda row: f"time {_show(values, row)} is not an ISO 8601 time (like 2024-03-01T12:30:00Z)")
    else:
        problems.append((0, "time", f"the column holds {values.type}; declared time_unit iso8601 needs text"))
        return np.zeros(len(values), dtype=np.int64)
    filled = stamps.fillna(pd.Timestamp(0, tz="UTC"))
    return filled.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _ratings(values: pa.Array, rating_range: tuple[float, float] | None, problems: list) -> np.ndarray:
    ratings = _numbers(values, "rating", "rating", problems)
    if rating_range is not None:
        low, high = rating_range
        _flag(problems, (ratings < low) | (ratings > high), "rating",
              lambda row: f"rating {_show(values, row)} is out of range: the declaration allows [{low:g}, {high:g}]")
    return ratings


def read_interactions(path: Path, name: str, datasets: dict) -> pd.DataFrame:
    """The interactions of the log at ``path``, read as dataset ``name`` of ``datasets`` (the
    ``datasets`` parameter) declares it: for notebooks, benchmarks and tests."""
    return read_events(path, declaration_of(name, datasets)).interactions
