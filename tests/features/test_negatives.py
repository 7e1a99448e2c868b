"""Tests for duet_pipeline.features.negatives (PROTOCOL 2.7: keyed negatives).

The uniformity, own-history and impossible-request properties are tested next to the
samples in test_samples.py; here: that the draws do not depend on how the positives are
partitioned, and that splitmix64 is the published function.
"""
from __future__ import annotations

import numpy as np
import pytest

from duet_pipeline.data.events import read_interactions
from duet_pipeline.project import load_parameters
from duet_pipeline.features.samples import build_item_index
from duet_pipeline.features.negatives import keyed_negatives, splitmix64, user_item_keys
from duet_pipeline.features.samples import (
    filter_users,
    order_by_time,
    reindex_items,
    split_leave_one_out,
)

from conftest import REPO_ROOT

SHIPPED_RATINGS = REPO_ROOT / "data" / "01_raw" / "ml-latest-small" / "ratings.csv"

MASK_64 = (1 << 64) - 1


@pytest.mark.parametrize(("split", "num_negatives"), [("train", 4), ("test", 99)])
def test_keyed_negatives_do_not_depend_on_partitioning(split, num_negatives):
    """On ml-latest-small, shuffling the positives, drawing each half on its own (with only
    that half's users' seen items, as a partition would) and putting the rows back gives
    the same negatives as one draw over all positives."""
    interactions = read_interactions(SHIPPED_RATINGS, "ml-latest-small", load_parameters()["datasets"])
    item_index = build_item_index(interactions)
    interactions = order_by_time(reindex_items(filter_users(interactions, 3), item_index))
    num_items = int(item_index["item_index"].max())
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    seen_keys = user_item_keys(users, items, num_items)
    candidate_items = np.unique(items)
    positives = split_leave_one_out(interactions, 10)[split]
    seed = 61

    whole = keyed_negatives(seed, split, positives.user_id, positives.position, num_negatives,
                            candidate_items, seen_keys, num_items)

    permutation = np.random.default_rng(7).permutation(len(positives.user_id))
    parts = []
    for half in np.array_split(permutation, 2):
        half_users = positives.user_id[half]
        # Train: nearly every user has rows in both halves; test (one row per user):
        # each half sees only its own users' items, the others' are absent.
        half_seen = seen_keys[np.isin(seen_keys // (num_items + 1), half_users)]
        parts.append(keyed_negatives(seed, split, half_users, positives.position[half],
                                     num_negatives, candidate_items, half_seen, num_items))
    reassembled = np.empty_like(whole)
    reassembled[permutation] = np.concatenate(parts)
    assert np.array_equal(reassembled, whole)


def _splitmix64_reference(x: int) -> int:
    """splitmix64's finaliser on a Python int, every step masked to 64 bits."""
    z = (x + 0x9E3779B97F4A7C15) & MASK_64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK_64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK_64
    return z ^ (z >> 31)


def test_splitmix64_matches_plain_python_reference():
    """The vectorised uint64 splitmix64 equals a plain-Python one, including wrap-around,
    and its first output from state 0 is the published 0xE220A8397B1DCDAF."""
    values = [0, 1, 2, 12345, 0x123456789ABCDEF0, 1 << 63, MASK_64 - 0x9E3779B97F4A7C15, MASK_64]
    got = splitmix64(np.array(values, dtype=np.uint64))
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == [_splitmix64_reference(v) for v in values]
    assert _splitmix64_reference(0) == 0xE220A8397B1DCDAF
