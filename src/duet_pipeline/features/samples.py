"""From interactions to samples, PROTOCOL section 2: the pandas engine (the reference).

A stored sample is one positive: (user_id, history, target_item, negatives), the
negatives an array. What a model sees, (user, history, target, label) rows with each
positive followed by its negatives, is expanded from it when the samples are loaded
(training/tensors.py), so the train samples on disk are ~5x smaller than the rows.

Everything here is vectorised numpy: ml-1m has a million interactions, so a per-row
Python loop would dominate the pipeline's run time. features/spark_samples.py is the
same section in Spark; both draw negatives with features/negatives.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from duet_pipeline.parameters import Block, ParameterError, parse_block

from .negatives import keyed_negatives, user_item_keys

logger = logging.getLogger(__name__)

# The stored columns; the label is implied: target_item is a positive, negatives are not.
SAMPLE_COLUMNS = ("user_id", "history", "target_item", "negatives")


class NegativeCounts(Block):
    """Negatives drawn per positive, by split."""

    train: int = Field(ge=1)
    validation: int = Field(ge=1)
    test: int = Field(ge=1)


class FeatureParams(Block):
    """The ``features`` parameters (PROTOCOL section 2)."""

    # Leave-one-out needs a train, a validation and a test interaction per user.
    min_user_interactions: int = Field(ge=3)
    max_seq_len: int = Field(ge=1)
    negatives: NegativeCounts
    seed: int = Field(ge=0)
    # pandas: in memory, the reference; spark: the same samples from Spark (PROTOCOL section 9).
    engine: Literal["pandas", "spark"]
    # leave_one_out: PROTOCOL 2.6; replay: the last replay_length clicks of each user are a
    # time-ordered stream to replay (PROTOCOL section 10), the click before is validation.
    split: Literal["leave_one_out", "replay"]
    replay_length: int = Field(ge=1)

    @classmethod
    def from_params(cls, params: dict) -> "FeatureParams":
        parsed = parse_block(cls, params, "features")
        if parsed.split == "replay" and parsed.engine == "spark":
            raise ParameterError("parameter features.split = 'replay': the replay split is built by the pandas "
                                 "engine only; use features.engine=pandas")
        return parsed

    def sample_options(self) -> dict:
        """The keyword arguments both engines' ``make_samples`` take (all but the engine;
        the split's only where it is not leave-one-out, which both engines build)."""
        exclude = {"engine"} | ({"split", "replay_length"} if self.split == "leave_one_out" else set())
        return self.model_dump(exclude=exclude)

    def hashed(self) -> dict:
        """What a result depends on: the block less the engine-neutral defaults' keys, so
        that a leave-one-out result keeps the identity it had before the replay existed."""
        return {key: value for key, value in self.model_dump().items()
                if self.split != "leave_one_out" or key not in ("split", "replay_length")}


@dataclass(frozen=True)
class SequenceSet:
    """Positive samples of one split as flat arrays (one row per target click)."""

    user_id: np.ndarray  # (n,) int64
    history: np.ndarray  # (n, max_seq_len) int64, left-padded with 0, most recent last
    target_item: np.ndarray  # (n,) int64
    position: np.ndarray  # (n,) int64: the target's click index within its user (the negatives' key)


def filter_users(interactions: pd.DataFrame, min_user_interactions: int) -> pd.DataFrame:
    """Drop users with fewer than ``min_user_interactions`` interactions."""
    counts = interactions.groupby("user_id")["item_id"].transform("size")
    return interactions.loc[counts >= min_user_interactions].reset_index(drop=True)


def build_item_index(interactions: pd.DataFrame) -> pd.DataFrame:
    """Raw item ids (integers or strings) -> dense 1..N in ascending raw-id order (PROTOCOL 2.3;
    0 is padding), independent of row order: ``raw_item_id``, ``item_index`` (int64)."""
    # Distinct ids by hashing, then sorted: np.unique would sort every row (slow for strings).
    raw_ids = np.sort(pd.unique(interactions["item_id"].to_numpy()))
    return pd.DataFrame({"raw_item_id": raw_ids, "item_index": np.arange(1, len(raw_ids) + 1, dtype=np.int64)})


def reindex_items(interactions: pd.DataFrame, item_index: pd.DataFrame) -> pd.DataFrame:
    """Replace raw item ids by their dense index 1..N (0 stays free for padding)."""
    mapping = pd.Series(
        item_index["item_index"].to_numpy(), index=item_index["raw_item_id"].to_numpy()
    )
    mapped = interactions["item_id"].map(mapping)
    unknown = mapped.isna()
    if unknown.any():
        missing = interactions.loc[unknown, "item_id"].unique()[:5].tolist()
        raise ValueError(
            f"item_index has no entry for raw item ids {missing}: the item_index dataset "
            "does not belong to these interactions; re-run the ingestion pipeline."
        )
    return interactions.assign(item_id=mapped.astype("int64").to_numpy())


def order_by_time(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then timestamp; ties keep the file order (PROTOCOL 2.4)."""
    order = np.lexsort(
        (
            interactions["row_order"].to_numpy(),
            interactions["timestamp"].to_numpy(),
            interactions["user_id"].to_numpy(),
        )
    )
    return interactions.iloc[order].reset_index(drop=True)


def sliding_windows(
    users: np.ndarray, items: np.ndarray, max_seq_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History windows for every click of time-ordered, user-grouped arrays.

    Returns ``(history, position, count)``: row ``i`` of ``history`` holds the last
    ``min(position[i], max_seq_len)`` clicks of the same user before click ``i``,
    most recent last, left-padded with 0; ``position`` is the click's index within its
    user and ``count`` that user's number of clicks.
    """
    n = len(items)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    lengths = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, lengths)
    history = np.zeros((n, max_seq_len), dtype=np.int64)
    for lag in range(1, max_seq_len + 1):
        # Column max_seq_len - lag holds the click `lag` steps back, if the user has one.
        has_lag = position >= lag
        rows = np.flatnonzero(has_lag)
        history[rows, max_seq_len - lag] = items[rows - lag]
    return history, position, np.repeat(lengths, lengths)


def split_leave_one_out(
    interactions: pd.DataFrame, max_seq_len: int
) -> dict[str, SequenceSet]:
    """Positive samples per split: last click test, second last validation, rest train.

    ``interactions`` must be ordered by :func:`order_by_time`. The first click of a
    user has no history and is never a target (PROTOCOL 2.5-2.6).
    """
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    history, position, count = sliding_windows(users, items, max_seq_len)
    masks = {
        "train": (position >= 1) & (position <= count - 3),
        "validation": (position == count - 2) & (position >= 1),
        "test": (position == count - 1) & (position >= 1),
    }
    return {
        split: SequenceSet(users[mask], history[mask], items[mask], position[mask])
        for split, mask in masks.items()
    }


def split_replay(
    interactions: pd.DataFrame, max_seq_len: int, replay_length: int
) -> dict[str, SequenceSet]:
    """Positive samples of the replay split (PROTOCOL section 10): each user's last
    ``replay_length`` clicks are its replay stream (``test``, in click order), the click
    before them is validation, everything earlier is train. ``policy`` holds the last
    ``replay_length`` train clicks of each user, the train-period stream a request policy
    learns from. A step's window holds the clicks before it, earlier replayed ones included.

    ``interactions`` must be ordered by :func:`order_by_time`, every user with at least
    ``replay_length + 3`` clicks (one train target, one validation, the stream).
    """
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    history, position, count = sliding_windows(users, items, max_seq_len)
    validation = count - replay_length - 1
    train = (position >= 1) & (position < validation)
    masks = {
        "train": train,
        "validation": position == validation,
        "test": position > validation,
        "policy": train & (position >= validation - replay_length),
    }
    return {
        split: SequenceSet(users[mask], history[mask], items[mask], position[mask])
        for split, mask in masks.items()
    }


def replay_users(interactions: pd.DataFrame, min_user_interactions: int, replay_length: int) -> pd.DataFrame:
    """The users long enough for the replay (``replay_length + 3`` clicks); says how many are dropped."""
    needed = max(min_user_interactions, replay_length + 3)
    kept = filter_users(interactions, needed)
    total, left = interactions["user_id"].nunique(), kept["user_id"].nunique()
    if left == 0:
        raise ParameterError(f"parameter features.replay_length = {replay_length}: no user has the {needed} clicks "
                             f"the replay needs (of {total} users); lower it")
    if left < total:
        logger.warning("features.replay_length=%d: %d of %d users have fewer than %d clicks and are left out "
                       "of the replay split", replay_length, total - left, total, needed)
    return kept


# The negatives' stream of each split's positives: the replayed clicks draw from their own.
NEGATIVE_STREAMS = {"train": "train", "validation": "validation", "test": "test"}
REPLAY_NEGATIVE_STREAMS = {"train": "train", "validation": "validation", "test": "replay", "policy": "policy"}


def build_samples(
    positives: SequenceSet,
    split: str,
    num_negatives: int,
    candidate_items: np.ndarray,
    seen_keys: np.ndarray,
    num_items: int,
    seed: int,
) -> pd.DataFrame:
    """One stored row per positive: (user, history, target, negatives).

    The negatives come from the stream keyed by (seed, split, user, the target's click
    position), so they do not depend on the order or grouping of the positives
    (features/negatives.py).
    """
    negatives = keyed_negatives(seed, split, positives.user_id, positives.position, num_negatives,
                                candidate_items, seen_keys, num_items)
    return samples_frame(positives.user_id, positives.history, positives.target_item, negatives)


def samples_frame(
    user_id: np.ndarray, history: np.ndarray, target_item: np.ndarray, negatives: np.ndarray
) -> pd.DataFrame:
    """A stored samples frame; ``history`` and ``negatives`` hold one int64 array per row.

    Object rows of numpy views rather than an Arrow list column: pandas 3 writes an
    Arrow list dtype into the parquet metadata in a form that plain
    ``pd.read_parquet`` cannot parse back, and these files must open anywhere.
    """
    return pd.DataFrame(
        {
            "user_id": user_id.astype(np.int64),
            "history": list(np.ascontiguousarray(history, dtype=np.int64)),
            "target_item": target_item.astype(np.int64),
            "negatives": list(np.ascontiguousarray(negatives, dtype=np.int64)),
        }
    )


def list_matrix(samples: pd.DataFrame, column: str, width: int | None = None) -> np.ndarray:
    """A list column (``history``, ``negatives``) as an (n, width) int64 matrix.

    Accepts Arrow-backed list columns (what the catalog loads, without a Python
    object per row) and object columns of lists or arrays. An empty frame cannot tell
    its width, so it gives (0, ``width``) (``width`` defaults to 0).
    """
    values = samples[column]
    if len(values) == 0:
        return np.zeros((0, width or 0), dtype=np.int64)
    if isinstance(values.dtype, pd.ArrowDtype):
        return arrow_list_matrix(pa.chunked_array(values.array.__arrow_array__()), column)
    return np.stack(values.to_numpy()).astype(np.int64)


def arrow_list_matrix(lists: pa.Array | pa.ChunkedArray, column: str) -> np.ndarray:
    """An Arrow list array of equal-length lists as an (n, width) int64 matrix."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if len(lists) == 0:
        return np.zeros((0, 0), dtype=np.int64)
    widths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    if (widths != widths[0]).any():
        raise ValueError(f"{column} lists have different lengths; expected one length per split")
    return lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(-1, int(widths[0]))


# The pandas engine's peak memory per interaction (histories, sort keys, the stored
# frames and their Arrow copies): the `kedro run` of the data stages peaked at 1.32 GiB
# on synthetic-1m and 3.80 GiB on synthetic-5m (`make benchmark-scale`,
# docs/benchmarks.md), 0.67 KB per added interaction; 1 KB leaves a margin of 1.5x.
PANDAS_BYTES_PER_INTERACTION = 1_000


def available_memory() -> int | None:
    """Bytes the kernel can give this process now (MemAvailable), or None off Linux."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits_in_memory(interactions: int, available: int | None = None) -> None:
    """Refuse, before allocating, a pandas feature stage that would exhaust the memory."""
    available = available_memory() if available is None else available
    needed = interactions * PANDAS_BYTES_PER_INTERACTION
    if available is not None and needed > available:
        raise MemoryError(
            f"features.engine=pandas needs about {needed / 2**30:.1f} GiB for {interactions:,} interactions and "
            f"{available / 2**30:.1f} GiB is available: out-of-memory risk; run the spark engine instead "
            "(--params=features.engine=spark)"
        )


def make_samples(
    interactions: pd.DataFrame,
    item_index: pd.DataFrame,
    max_seq_len: int,
    min_user_interactions: int,
    negatives: dict[str, int],
    seed: int,
    split: str = "leave_one_out",
    replay_length: int = 10,
) -> dict[str, pd.DataFrame]:
    """PROTOCOL section 2 end to end: train, validation and test sample frames (and, for the
    replay split of section 10, ``policy``; its ``test`` holds every replayed click).

    ``negatives`` maps each split to its number of negatives per positive; each split
    draws from its own keyed stream, so changing one split's count leaves the others'
    negatives unchanged. The replayed and the policy clicks draw as many as test.
    """
    if split == "replay":
        interactions = replay_users(interactions, min_user_interactions, replay_length)
    else:
        interactions = filter_users(interactions, min_user_interactions)
    interactions = order_by_time(reindex_items(interactions, item_index))
    num_items = int(item_index["item_index"].max())
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    seen_keys = user_item_keys(users, items, num_items)
    candidate_items = np.unique(items)
    if split == "replay":
        positives, streams = split_replay(interactions, max_seq_len, replay_length), REPLAY_NEGATIVE_STREAMS
    else:
        positives, streams = split_leave_one_out(interactions, max_seq_len), NEGATIVE_STREAMS
    counts = {**negatives, "policy": negatives["test"]}
    return {
        name: build_samples(split_positives, streams[name], int(counts[name]), candidate_items, seen_keys,
                            num_items, seed)
        for name, split_positives in positives.items()
    }
