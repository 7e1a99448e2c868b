"""From interactions to (user, history, target, label) samples, PROTOCOL section 2.

Everything here is vectorised numpy: ml-1m has a million interactions and the
train split five million sample rows, so a per-row Python loop would dominate the
pipeline's run time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from duet_pipeline.parameters import Block, parse_block

SAMPLE_COLUMNS = ("user_id", "history", "target_item", "label")


class NegativeCounts(Block):
    """Negatives drawn per positive, by split."""

    train: int = Field(ge=1)
    validation: int = Field(ge=1)
    test: int = Field(ge=1)


class FeatureParams(Block):
    """The ``features`` parameters (PROTOCOL section 2)."""

    min_rating: float | None = Field(ge=0)  # None: every rating is an interaction
    # Leave-one-out needs a train, a validation and a test interaction per user.
    min_user_interactions: int = Field(ge=3)
    max_seq_len: int = Field(ge=1)
    negatives: NegativeCounts
    seed: int = Field(ge=0)

    @classmethod
    def from_params(cls, params: dict) -> "FeatureParams":
        return parse_block(cls, params, "features")


@dataclass(frozen=True)
class SequenceSet:
    """Positive samples of one split as flat arrays (one row per target click)."""

    user_id: np.ndarray  # (n,) int64
    history: np.ndarray  # (n, max_seq_len) int64, left-padded with 0, most recent last
    target_item: np.ndarray  # (n,) int64


def filter_users(interactions: pd.DataFrame, min_user_interactions: int) -> pd.DataFrame:
    """Drop users with fewer than ``min_user_interactions`` interactions."""
    counts = interactions.groupby("user_id")["item_id"].transform("size")
    return interactions.loc[counts >= min_user_interactions].reset_index(drop=True)


def filter_ratings(interactions: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Keep ratings >= ``min_rating``; ``None`` keeps every rating (implicit feedback)."""
    if min_rating is None:
        return interactions
    return interactions.loc[interactions["rating"] >= min_rating].reset_index(drop=True)


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
        split: SequenceSet(users[mask], history[mask], items[mask])
        for split, mask in masks.items()
    }


def user_item_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """Sorted unique int64 keys identifying (user, item) pairs, for fast membership tests."""
    return np.unique(users.astype(np.int64) * (num_items + 1) + items.astype(np.int64))


def sample_negatives(
    users: np.ndarray,
    num_negatives: int,
    candidate_items: np.ndarray,
    seen_keys: np.ndarray,
    num_items: int,
    rng: np.random.Generator,
    max_rounds: int = 1000,
) -> np.ndarray:
    """Draw ``num_negatives`` distinct unseen items for each entry of ``users``.

    Uniform without replacement over ``candidate_items`` minus the items the user
    interacted with (``seen_keys`` from :func:`user_item_keys`). Rejection sampling:
    only the rejected cells are redrawn, so the result is uniform over the valid sets
    and the cost stays a few vectorised passes.
    """
    _check_enough_unseen(users, num_negatives, len(candidate_items), seen_keys, num_items)
    n = len(users)
    draws = candidate_items[rng.integers(0, len(candidate_items), size=(n, num_negatives))]
    bad = _rejected(users, draws, seen_keys, num_items)
    for _ in range(max_rounds):
        if not bad.any():
            return draws
        draws[bad] = candidate_items[rng.integers(0, len(candidate_items), size=int(bad.sum()))]
        bad = _rejected(users, draws, seen_keys, num_items)
    raise ValueError(
        f"could not draw {num_negatives} distinct unseen negatives for some users after "
        f"{max_rounds} rounds: a user has interacted with almost every item; lower the "
        "number of negatives."
    )


def _check_enough_unseen(
    users: np.ndarray, num_negatives: int, num_candidates: int, seen_keys: np.ndarray, num_items: int
) -> None:
    """Fail clearly, naming a user, when someone has fewer unseen items than negatives."""
    seen_users, seen_counts = np.unique(seen_keys // (num_items + 1), return_counts=True)
    short = seen_users[num_candidates - seen_counts < num_negatives]
    short = short[np.isin(short, users)]
    if len(short):
        raise ValueError(
            f"user {int(short[0])} (and {len(short) - 1} more) has fewer than {num_negatives} "
            f"items left to draw as negatives from {num_candidates} candidates; lower the "
            "parameter features.negatives or use a larger dataset."
        )


def _rejected(
    users: np.ndarray, draws: np.ndarray, seen_keys: np.ndarray, num_items: int
) -> np.ndarray:
    """Cells that are a seen item or repeat an earlier cell of the same row."""
    keys = users[:, None] * (num_items + 1) + draws
    pos = np.searchsorted(seen_keys, keys)
    seen = seen_keys[np.minimum(pos, len(seen_keys) - 1)] == keys
    # A repeat within a row: sort each row, flag equal neighbours, map back.
    order = np.argsort(draws, axis=1, kind="stable")
    sorted_draws = np.take_along_axis(draws, order, axis=1)
    repeat_sorted = np.zeros_like(seen)
    repeat_sorted[:, 1:] = sorted_draws[:, 1:] == sorted_draws[:, :-1]
    repeat = np.zeros_like(seen)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    return seen | repeat


def build_samples(
    positives: SequenceSet,
    num_negatives: int,
    candidate_items: np.ndarray,
    seen_keys: np.ndarray,
    num_items: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Interleave each positive with its negatives: rows (user, history, target, label).

    A positive's negatives share its user and history and follow it directly.
    """
    negatives = sample_negatives(
        positives.user_id, num_negatives, candidate_items, seen_keys, num_items, rng
    )
    group = num_negatives + 1
    targets = np.concatenate([positives.target_item[:, None], negatives], axis=1).reshape(-1)
    labels = np.zeros((len(positives.user_id), group), dtype=np.int8)
    labels[:, 0] = 1
    return samples_frame(
        np.repeat(positives.user_id, group),
        np.repeat(positives.history, group, axis=0),
        targets,
        labels.reshape(-1),
    )


def samples_frame(
    user_id: np.ndarray, history: np.ndarray, target_item: np.ndarray, label: np.ndarray
) -> pd.DataFrame:
    """A samples DataFrame whose ``history`` holds one int64 array per row.

    Object rows of numpy views rather than an Arrow list column: pandas 3 writes an
    Arrow list dtype into the parquet metadata in a form that plain
    ``pd.read_parquet`` cannot parse back, and these files must open anywhere.
    """
    history = np.ascontiguousarray(history, dtype=np.int64)
    return pd.DataFrame(
        {
            "user_id": user_id.astype(np.int64),
            "history": list(history),
            "target_item": target_item.astype(np.int64),
            "label": label.astype(np.int8),
        }
    )


def history_matrix(samples: pd.DataFrame, width: int | None = None) -> np.ndarray:
    """The ``history`` column as an (n, max_seq_len) int64 matrix.

    Accepts Arrow-backed list columns (what the catalog loads, without a Python
    object per row) and object columns of lists or arrays. An empty frame cannot tell
    its window length, so it gives (0, ``width``) (``width`` defaults to 0).
    """
    column = samples["history"]
    if len(column) == 0:
        return np.zeros((0, width or 0), dtype=np.int64)
    if isinstance(column.dtype, pd.ArrowDtype):
        lists = pa.chunked_array(column.array.__arrow_array__()).combine_chunks()
        widths = pa.compute.list_value_length(lists).to_numpy(zero_copy_only=False)
        if (widths != widths[0]).any():
            raise ValueError("history lists have different lengths; expected max_seq_len each")
        return lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(-1, int(widths[0]))
    return np.stack(column.to_numpy()).astype(np.int64)


def make_samples(
    interactions: pd.DataFrame,
    item_index: pd.DataFrame,
    max_seq_len: int,
    min_user_interactions: int,
    min_rating: float | None,
    negatives: dict[str, int],
    seed: int,
) -> dict[str, pd.DataFrame]:
    """PROTOCOL section 2 end to end: train, validation and test sample frames.

    ``negatives`` maps each split to its number of negatives per positive. Each split
    draws from its own child seed, so changing one split's count leaves the others'
    negatives unchanged.
    """
    interactions = filter_ratings(interactions, min_rating)
    interactions = filter_users(interactions, min_user_interactions)
    interactions = order_by_time(reindex_items(interactions, item_index))
    num_items = int(item_index["item_index"].max())
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    seen_keys = user_item_keys(users, items, num_items)
    candidate_items = np.unique(items)
    positives = split_leave_one_out(interactions, max_seq_len)
    child_seeds = np.random.SeedSequence(seed).spawn(len(positives))
    samples = {}
    for (split, split_positives), child in zip(positives.items(), child_seeds):
        if split not in negatives:
            raise ValueError(
                f"parameter negatives has no entry for split '{split}'; "
                f"expected keys {sorted(positives)}"
            )
        samples[split] = build_samples(
            split_positives,
            int(negatives[split]),
            candidate_items,
            seen_keys,
            num_items,
            np.random.default_rng(child),
        )
    return samples
