"""Train samples streamed from parquet files, so memory is bounded by the batch.

``training.streaming: true`` trains on :class:`StreamedSamples` instead of tensors held
in memory. pyarrow reads the stored samples (one row per positive, PROTOCOL 2.7) a row
group at a time, in an order shuffled per epoch; a buffer of about a million positives
(the catalog writes row groups of 64Ki positives, so ~15 groups from anywhere in the
file) is shuffled again by positive, and each batch is expanded to model rows (each
positive followed by its negatives) only when it is trained on. Peak memory is then the
buffer, not the dataset: a few hundred MB at the default buffer.

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

from .tensors import SampleTensors, expand

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
        """Batches of ``batch_size`` model rows (whole positives with their negatives), in
        an order that depends only on ``seed``."""
        rng = np.random.default_rng(seed)
        per_batch = max(1, batch_size // self.group)
        pending: list[tuple[np.ndarray, ...]] = []
        held = 0
        for number in rng.permutation(len(self.row_groups)):
            part = _read_row_group(*self.row_groups[number])
            if not len(part[0]):
                continue
            pending.append(part)
            held += len(pending[-1][0])
            if held >= self.shuffle_buffer:
                rest = yield from _emit(pending, per_batch, rng, keep_remainder=True)
                pending, held = rest, sum(len(part[0]) for part in rest)
        yield from _emit(pending, per_batch, rng, keep_remainder=False)


def _read_row_group(path: str, group: int) -> tuple[np.ndarray, ...]:
    table = pq.ParquetFile(path).read_row_group(group, columns=list(SAMPLE_COLUMNS))
    return (table.column("user_id").to_numpy(), arrow_list_matrix(table.column("history"), "history"),
            table.column("target_item").to_numpy(), arrow_list_matrix(table.column("negatives"), "negatives"))


def _emit(pending: list[tuple[np.ndarray, ...]], per_batch: int, rng: np.random.Generator,
          keep_remainder: bool) -> Iterator[SampleTensors]:
    """Shuffle the buffered positives and yield full batches; returns what is left over."""
    if not pending:
        return []
    columns = [np.concatenate(parts) for parts in zip(*pending)]
    order = rng.permutation(len(columns[0]))
    columns = [column[order] for column in columns]
    full = len(order) // per_batch * per_batch if keep_remainder else len(order)
    for start in range(0, full, per_batch):
        yield expand(*(column[start : start + per_batch] for column in columns))
    return [tuple(column[full:] for column in columns)] if full < len(order) else []
