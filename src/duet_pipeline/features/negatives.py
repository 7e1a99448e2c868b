"""Negatives from a random stream keyed by (seed, split, user), PROTOCOL section 2.7.

Every engine calls :func:`keyed_negatives`, so every engine draws the same negatives.
The stream is counter-based: the k-th negative of the positive at click position t of
user u in split s, on its r-th attempt, is ``splitmix64`` of the key
(seed, s, u, t) and the counter (r, k). Nothing depends on row order, on which rows
share a batch or a partition, or on how many rows there are, so a shuffled, split or
partitioned input gives the same samples.

Uniform without replacement over the candidate items minus the user's own items:
a cell is redrawn (next attempt) while it is an item the user interacted with or
repeats an earlier cell of its row.
"""
from __future__ import annotations

import numpy as np

# A split's place in the key; fixed, so adding a split never moves another's draws.
SPLIT_KEYS = {"train": 1, "validation": 2, "test": 3, "replay": 4, "policy": 5}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on uint64 (Steele, Lea and Flood 2014)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _MIX_1
        x = (x ^ (x >> np.uint64(27))) * _MIX_2
        return x ^ (x >> np.uint64(31))


def row_keys(seed: int, split: str, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """One uint64 stream key per positive: (seed, split, user, click position)."""
    key = splitmix64(np.full(len(users), seed, dtype=np.uint64) ^ np.uint64(SPLIT_KEYS[split]))
    key = splitmix64(key ^ users.astype(np.uint64))
    return splitmix64(key ^ positions.astype(np.uint64))


def user_item_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """Sorted unique int64 keys identifying (user, item) pairs, for fast membership tests."""
    return np.unique(users.astype(np.int64) * (num_items + 1) + items.astype(np.int64))


def keyed_negatives(
    seed: int,
    split: str,
    users: np.ndarray,
    positions: np.ndarray,
    num_negatives: int,
    candidate_items: np.ndarray,
    seen_keys: np.ndarray,
    num_items: int,
    max_rounds: int = 1000,
) -> np.ndarray:
    """(n, num_negatives) distinct unseen items for the positives ``(users, positions)``.

    ``candidate_items``: the items that occur in the ratings, sorted; ``seen_keys``: the
    users' (user, item) pairs from :func:`user_item_keys` (at least every user of
    ``users``; other users' pairs are ignored).
    """
    _check_enough_unseen(users, num_negatives, len(candidate_items), seen_keys, num_items)
    users = users.astype(np.int64)
    keys = row_keys(seed, split, users, positions)[:, None]
    columns = np.arange(num_negatives, dtype=np.uint64)[None, :]
    draws = _draw(keys, columns, 0, candidate_items)
    for attempt in range(1, max_rounds + 2):
        bad = _rejected(users, draws, seen_keys, num_items)
        if not bad.any():
            return draws
        if attempt > max_rounds:
            break
        rows, cols = np.nonzero(bad)
        draws[rows, cols] = _draw(keys[rows, 0], cols.astype(np.uint64), attempt, candidate_items)
    raise ValueError(
        f"could not draw {num_negatives} distinct unseen negatives for some users after "
        f"{max_rounds} rounds: a user has interacted with almost every item; lower the "
        "number of negatives."
    )


def _draw(keys: np.ndarray, columns: np.ndarray, attempt: int, candidate_items: np.ndarray) -> np.ndarray:
    """The candidates at cells (key, column) on ``attempt``; modulo bias < 1e-14."""
    counter = np.uint64(attempt) * np.uint64(1 << 20) + columns
    values = splitmix64(keys ^ splitmix64(counter))
    return candidate_items[(values % np.uint64(len(candidate_items))).astype(np.int64)]


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


def _rejected(users: np.ndarray, draws: np.ndarray, seen_keys: np.ndarray, num_items: int) -> np.ndarray:
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
