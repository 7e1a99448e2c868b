"""Train samples streamed from parquet files, so memory is bounded by the batch.

``training.streaming: true`` trains on :class:`StreamedSamples` instead of tensors held
in memory. pyarrow reads the stored samples (one row per positive, PROTOCOL 2.7) a row
group at a time, in an order shuffled per epoch; a buffer of about a million positives
(the catalog writes row groups of 64Ki positives, so ~15 groups from anywhere in the
file) is shuffled again by positive, and the positives are expanded to model rows (each
positive followed by its negatives) a batch at a time, only when they are trained on.
Batches are ``batch_size`` model rows, as in memory: a positive's rows may straddle two
batches, and a buffer's last rows open the next buffer's first batch. Peak memory is then
the buffer, not the dataset: a few hundred MB at the default buffer.

Every process of a distributed training reads the same stream in the same order (the
shuffle depends on the seed and the epoch only) and trains on its slice of each global
batch, so the global batches equal a single process's.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from duet_pipeline.features.samples import SAMPLE_COLUMNS, arrow_list_matrix

from duet_pipeline.samples import SampleTensors

from .tensors import expand

# Positives held for the in-buffer shuffle; ~130 MB of int64 samples.
DEFAULT_SHUFFLE_BUFFER = 1_000_000


@dataclass(frozen=True)
class StreamedSamples:
    """Stored samples in parquet ``files``, read a row group at a time."""

    row_groups: tuple[tuple[str, int], ...]  # (file, row group), the units of the per-epoch shuffle
    positives: int  # stored rows, from the files' metadata
    group: int  # model rows per positive: 1 + negatives
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER

    @classmethod
    def open(cls, files: list[str], shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER) -> "StreamedSamples":
        if not files:
            raise ValueError("no parquet files to stream: the train samples version is empty")
        metadata = [pq.ParquetFile(path).metadata for path in files]
        missing = set(SAMPLE_COLUMNS) - set(metadata[0].schema.to_arrow_schema().names)
        if missing:
            raise ValueError(f"{files[0]}: stored samples lack columns {sorted(missing)}")
        first = next((path for path, meta in zip(files, metadata) if meta.num_rows), None)
        group = 1
        if first is not None:
            negatives = pq.ParquetFile(first).read_row_group(0, columns=["negatives"]).column(0)
            group = 1 + arrow_list_matrix(negatives.slice(0, 1), "negatives").shape[1]
        row_groups = tuple((path, number) for path, meta in zip(files, metadata) for number in range(meta.num_row_groups))
        return cls(row_groups, sum(meta.num_rows for meta in metadata), group, shuffle_buffer)

    def __len__(self) -> int:
        """Model rows: each positive and its negatives."""
        return self.positives * self.group

    def batches(self, batch_size: int, seed: int) -> Iterator[SampleTensors]:
        """Batches of ``batch_size`` model rows (the last one may be shorter), in an order
        that depends only on ``seed``."""
        rng = np.random.default_rng(seed)
        pending: list[tuple[np.ndarray, ...]] = []
        held = 0
        leftover = None  # rows (fewer than batch_size) carried into the next buffer's first batch
        for number in rng.permutation(len(self.row_groups)):
            part = _read_row_group(*self.row_groups[number])
            if not len(part[0]):
                continue
            pending.append(part)
            held += len(part[0])
            if held >= self.shuffle_buffer:
                leftover = yield from _emit(pending, batch_size, rng, leftover)
                pending, held = [], 0
        leftover = yield from _emit(pending, batch_size, rng, leftover)
        if leftover is not None:
            yield leftover


def _read_row_group(path: str, group: int) -> tuple[np.ndarray, ...]:
    table = pq.ParquetFile(path).read_row_group(group, columns=list(SAMPLE_COLUMNS))
    return (table.column("user_id").to_numpy(), arrow_list_matrix(table.column("history"), "history"),
            table.column("target_item").to_numpy(), arrow_list_matrix(table.column("negatives"), "negatives"))


def _emit(pending: list[tuple[np.ndarray, ...]], batch_size: int, rng: np.random.Generator,
          leftover: SampleTensors | None) -> Iterator[SampleTensors]:
    """Shuffle the buffered positives, and yield every full batch of the rows ``leftover``
    then the positives' expanded rows make; returns the rows left (None if none)."""
    if not pending:
        return leftover
    columns = [np.concatenate(parts) for parts in zip(*pending)]
    order = rng.permutation(len(columns[0]))
    users, history, targets, negatives = (column[order] for column in columns)
    group = negatives.shape[1] + 1
    rows, start = leftover, 0
    while start < len(users):
        missing = batch_size - (len(rows) if rows is not None else 0)
        stop = min(len(users), start + -(-missing // group))  # enough positives to fill the batch
        expanded = expand(users[start:stop], history[start:stop], targets[start:stop], negatives[start:stop])
        rows = expanded if rows is None else SampleTensors.concat([rows, expanded])
        start = stop
        if len(rows) >= batch_size:
            yield rows.rows(slice(0, batch_size))
            rows = rows.rows(slice(batch_size, None)) if len(rows) > batch_size else None
    return rows
