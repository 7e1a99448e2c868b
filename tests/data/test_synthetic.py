"""synthetic-<N>: deterministic, ml-25m-shaped, heavy-tailed, and learnable in sequence."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duet_pipeline.data.synthetic import USERS_PER_SHARD, SyntheticParams, _World, synthetic_shape, synthetic_shards
from duet_pipeline.project import load_parameters

from conftest import REPO_ROOT

PARAMS = SyntheticParams.from_params(load_parameters(REPO_ROOT)["synthetic"])


def generated(dataset: str, params: SyntheticParams = PARAMS) -> pd.DataFrame:
    return pd.concat([load() for load in synthetic_shards(dataset, params).values()], ignore_index=True)


def test_shape_follows_ml25m_ratios() -> None:
    assert synthetic_shape("synthetic-25m") == (162_540, 59_047, 25_000_000)
    assert synthetic_shape("synthetic-1m") == (6_502, 2_362, 1_000_000)
    assert synthetic_shape("synthetic-2.5m")[2] == 2_500_000
    with pytest.raises(ValueError, match="synthetic-<N>"):
        synthetic_shape("synthetic-lots")


def test_generation_is_deterministic_and_exactly_n_interactions() -> None:
    first, second = generated("synthetic-250k"), generated("synthetic-250k")
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 250_000
    users, items, _ = synthetic_shape("synthetic-250k")
    assert first["user_id"].nunique() == users and first["item_id"].max() <= items
    other = generated("synthetic-250k", PARAMS.model_copy(update={"seed": PARAMS.seed + 1}))
    assert not first["item_id"].equals(other["item_id"])


def test_shards_hold_whole_users_in_time_order() -> None:
    shards = synthetic_shards("synthetic-5m", PARAMS)
    assert len(shards) == -(-synthetic_shape("synthetic-5m")[0] // USERS_PER_SHARD)
    shard = next(iter(shards.values()))()
    assert shard["user_id"].between(1, USERS_PER_SHARD).all()
    assert (shard.groupby("user_id")["timestamp"].diff().dropna() > 0).all()


def test_popularity_and_activity_are_heavy_tailed() -> None:
    """The top 10% of items take over half the clicks; users' activity has a long tail
    (mean far above median, as ml-25m's 154 vs 71) and the floor of 20 clicks."""
    ratings = generated("synthetic-1m")
    items = ratings["item_id"].value_counts().to_numpy()
    assert items[: len(items) // 10].sum() > 0.5 * len(ratings)
    clicks = ratings["user_id"].value_counts()
    assert clicks.min() >= 20 and clicks.mean() > 1.8 * clicks.median() and clicks.max() > 10 * clicks.median()


def test_the_next_click_follows_the_recent_ones() -> None:
    """Sequential structure: a click's item lies in the previous click's topic far more
    often than popularity alone would put it there."""
    ratings = generated("synthetic-250k")
    world_topic = _topic_of_items(ratings)
    topic = ratings["item_id"].map(world_topic).to_numpy()
    same_user = ratings["user_id"].to_numpy()[1:] == ratings["user_id"].to_numpy()[:-1]
    follows = (topic[1:] == topic[:-1])[same_user].mean()
    chance = (np.bincount(topic) / len(topic)) @ (np.bincount(topic) / len(topic))
    assert follows > 5 * chance


def _topic_of_items(ratings: pd.DataFrame) -> pd.Series:
    """Each raw item's topic, recovered from the generator's world."""
    users, items, rows = synthetic_shape("synthetic-250k")
    world = _World.create(users, items, rows, PARAMS)
    topic = np.repeat(np.arange(len(world.topic_starts) - 1), np.diff(world.topic_starts))
    return pd.Series(topic, index=world.item_ids)


@pytest.mark.parametrize("items_per_topic", [1, 2])
def test_every_topic_holds_items_even_at_one_item_per_topic(items_per_topic: int) -> None:
    """With as many topics as items, random topics would leave some empty (the last one
    broke the offsets); the items are then dealt out, one topic each at least."""
    params = PARAMS.model_copy(update={"items_per_topic": items_per_topic})
    clicks = generated("synthetic-20k", params)
    assert len(clicks) == 20_000
    users, items, rows = synthetic_shape("synthetic-20k")
    world = _World.create(users, items, rows, params)
    assert (np.diff(world.topic_starts) >= 1).all()
