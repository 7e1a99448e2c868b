"""Generated interactions: MovieLens-like rating files, and the synthetic-<N> datasets.

``generate_ratings``: the real ml-1m ratings are not redistributable (and not available
offline here), so speed is measured on a file of the same shape: same row, user and
item counts, every user with at least 20 ratings, item popularity skewed like real
catalogues, no repeated (user, item) pair.

``synthetic_shards``: the ``synthetic-<N>`` datasets (PROTOCOL section 9), logs of any
size with ml-25m's proportions, Zipf item popularity, Pareto user activity and a
sequential structure a model can learn: each user's interest walks on a ring of topics
(mostly staying, else stepping to a near topic), and each click is a popular item of
the current topic (or, rarely, of any topic). Generated in shards of a fixed number of
users from seeds (seed, shard), so every machine makes the same data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from duet_pipeline.parameters import Block, parse_block

from .declarations import SYNTHETIC_PATTERN, declaration_of


def generate_ratings(
    num_users: int,
    num_items: int,
    num_rows: int,
    seed: int = 0,
    min_per_user: int = 20,
    popularity_exponent: float = 1.0,
) -> pd.DataFrame:
    """Ratings with columns user_id, item_id, rating, timestamp (ids start at 1)."""
    if num_rows < num_users * min_per_user or num_rows > num_users * num_items:
        raise ValueError(
            f"num_rows={num_rows} must lie in [num_users*min_per_user, num_users*num_items]"
            f" = [{num_users * min_per_user}, {num_users * num_items}]"
        )
    rng = np.random.default_rng(seed)
    counts = _user_counts(num_users, num_items, num_rows, min_per_user, rng)
    # Zipf-like item popularity; each user takes its top-`count` items under Gumbel
    # noise, i.e. a popularity-weighted sample without replacement.
    log_popularity = -popularity_exponent * np.log(np.arange(1, num_items + 1))
    rng.shuffle(log_popularity)
    keys = log_popularity[None, :] + rng.gumbel(size=(num_users, num_items)).astype(np.float32)
    ranked = np.argsort(-keys, axis=1)
    taken = np.arange(num_items)[None, :] < counts[:, None]
    users = np.repeat(np.arange(1, num_users + 1), counts)
    items = ranked[taken] + 1
    start = rng.integers(956_700_000, 1_046_400_000, size=num_users)
    timestamps = np.repeat(start, counts) + rng.integers(0, 10_000_000, size=num_rows)
    order = rng.permutation(num_rows)  # files are not sorted by time
    return pd.DataFrame(
        {
            "user_id": users[order],
            "item_id": items[order],
            "rating": rng.integers(1, 6, size=num_rows)[order].astype(float),
            "timestamp": timestamps[order],
        }
    )


def _user_counts(
    num_users: int, num_items: int, num_rows: int, min_per_user: int, rng: np.random.Generator
) -> np.ndarray:
    """Per-user counts >= min_per_user, <= num_items, summing to num_rows, long-tailed."""
    weights = rng.lognormal(0.0, 1.0, size=num_users)
    extra = num_rows - num_users * min_per_user
    counts = min_per_user + np.floor(extra * weights / weights.sum()).astype(np.int64)
    counts = np.minimum(counts, num_items)
    while counts.sum() < num_rows:  # hand out the remainder where there is room
        room = np.flatnonzero(counts < num_items)
        add = min(num_rows - int(counts.sum()), len(room))
        counts[rng.choice(room, size=add, replace=False)] += 1
    return counts


def write_ratings(ratings: pd.DataFrame, root: str | Path, name: str, datasets: dict) -> Path:
    """Write ``ratings`` (user_id, item_id, rating, timestamp in seconds) where and as the
    csv/tsv declaration of ``name`` says, under the raw-data root ``root``; returns the file."""
    declaration = declaration_of(name, datasets)
    path = Path(root) / declaration.path.replace("{name}", name)
    if path.suffix == "":  # a folder of parts: one part
        path = path / f"part-0.{declaration.format}"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"user": ratings["user_id"], "item": ratings["item_id"], "rating": ratings["rating"],
                          "time": _written_times(ratings["timestamp"], declaration.time_unit)})
    if declaration.rating_range is not None and all(float(end).is_integer() for end in declaration.rating_range):
        frame["rating"] = frame["rating"].round().astype(int)
    columns = declaration.mapped_columns()
    frame = frame[list(columns)].rename(columns={role: columns[role] for role in columns})
    order = declaration.names or list(frame.columns)
    text = frame[order].to_csv(sep="\t", header=declaration.header, index=False, lineterminator="\n")
    # pandas writes one-character separators only: tabs, then swapped for the declared one.
    path.write_text(text.replace("\t", declaration.delimiter), encoding=declaration.encoding)
    return path


def _written_times(seconds: pd.Series, unit: str) -> pd.Series:
    if unit == "iso8601":
        return pd.to_datetime(seconds, unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return seconds * (1000 if unit == "ms" else 1)


# --------------------------------------------------------------------------- #
# synthetic-<N>: a service's logs at any size (PROTOCOL section 9)
# --------------------------------------------------------------------------- #

# ml-25m's users, items and ratings: every synthetic-<N> keeps these proportions.
ML25M_SHAPE = (162_541, 59_047, 25_000_095)
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}
USERS_PER_SHARD = 20_000  # fixed, so the data do not depend on how it is written
# ml-25m's ratios give users 154 clicks on average whatever N, but the catalogue shrinks
# with N; below ~420k interactions it stays at this many items, so every user keeps
# enough unseen items for 99 negatives.
MIN_SYNTHETIC_ITEMS = 1_000


class SyntheticParams(Block):
    """The ``synthetic`` parameters: how the synthetic-<N> logs are generated."""

    seed: int = Field(ge=0)
    items_per_topic: int = Field(ge=1)  # the latent ring the users' interest walks on has items / this topics
    stay_probability: float = Field(ge=0, le=1)  # a click keeps the previous click's topic
    explore_probability: float = Field(ge=0, le=1)  # a click ignores the topic (global popularity)
    popularity_exponent: float = Field(gt=0)  # Zipf exponent of item popularity
    activity_shape: float = Field(gt=0)  # Pareto (Lomax) shape of clicks per user: smaller, heavier tail
    min_user_clicks: int = Field(ge=3)

    @classmethod
    def from_params(cls, params: dict) -> "SyntheticParams":
        return parse_block(cls, params, "synthetic")


def is_synthetic(dataset: str) -> bool:
    return SYNTHETIC_PATTERN.fullmatch(dataset) is not None


def synthetic_shape(dataset: str) -> tuple[int, int, int]:
    """(users, items, interactions) of ``synthetic-<N>`` (N like 250k, 1m, 2.5m or 1000000)."""
    found = SYNTHETIC_PATTERN.fullmatch(dataset)
    if found is None:
        raise ValueError(f"dataset {dataset!r} is not synthetic-<N> (N like 250k, 1m, 25m)")
    interactions = round(float(found.group(1)) * _SCALE[found.group(2)])
    users, items, total = ML25M_SHAPE
    shape = (max(1, round(interactions * users / total)), max(MIN_SYNTHETIC_ITEMS, round(interactions * items / total)),
             interactions)
    if shape[2] < 10_000:
        raise ValueError(f"dataset {dataset!r}: synthetic datasets start at 10k interactions")
    return shape


def synthetic_shards(dataset: str, params: SyntheticParams) -> dict[str, Callable[[], pd.DataFrame]]:
    """The shards of ``dataset`` as loaders for a lazily saved PartitionedDataset: each
    shard is generated when it is written, so memory holds one shard at a time.

    Columns user_id, item_id, rating, timestamp, like the raw MovieLens ratings.
    """
    num_users, num_items, num_rows = synthetic_shape(dataset)
    world = _World.create(num_users, num_items, num_rows, params)
    starts = range(0, num_users, USERS_PER_SHARD)
    return {name: partial(world.shard, number, start)
            for number, (name, start) in enumerate(zip(synthetic_shard_names(dataset), starts))}


def synthetic_shard_names(dataset: str) -> list[str]:
    """The names of ``dataset``'s shards, in order."""
    return [f"part-{number:05d}" for number in range(-(-synthetic_shape(dataset)[0] // USERS_PER_SHARD))]


@dataclass(frozen=True)
class _World:
    """What every shard shares: the items' topics and popularity, each user's clicks count."""

    params: SyntheticParams
    counts: np.ndarray  # (users,) clicks per user, summing to N
    item_ids: np.ndarray  # (items,) raw item id of the k-th item in topic order
    topic_starts: np.ndarray  # (topics + 1,) offsets of each topic's items in item_ids
    within_topic_cdf: np.ndarray  # (items,) topic number + cumulative popularity share in the topic
    global_cdf: np.ndarray  # (items,) cumulative popularity share over all items

    @classmethod
    def create(cls, num_users: int, num_items: int, num_rows: int, params: SyntheticParams) -> "_World":
        rng = np.random.default_rng([params.seed, 0])
        topics = max(2, num_items // params.items_per_topic)
        popularity = np.arange(1, num_items + 1, dtype=np.float64) ** -params.popularity_exponent
        rng.shuffle(popularity)
        topic = rng.integers(0, topics, size=num_items)
        if np.bincount(topic, minlength=topics).min() == 0:
            # An empty topic would send the walk to its neighbour's items (and an empty
            # last topic breaks the offsets): deal the items out instead. Only a few items
            # per topic make this likely; at the default 50 it does not happen.
            topic = rng.permutation(np.arange(num_items) % topics)
        order = np.argsort(topic, kind="stable")
        topic, popularity = topic[order], popularity[order]
        starts = np.searchsorted(topic, np.arange(topics + 1))
        share = np.cumsum(popularity) - np.repeat(np.cumsum(popularity)[starts[1:] - 1] -
                                                  np.add.reduceat(popularity, starts[:-1]), np.diff(starts))
        within = topic + share / np.repeat(np.add.reduceat(popularity, starts[:-1]), np.diff(starts))
        counts = _pareto_counts(num_users, num_items, num_rows, params, rng)
        item_ids = rng.permutation(num_items)[order] + 1  # raw ids say nothing of the topic
        return cls(params, counts, item_ids, starts, within, np.cumsum(popularity) / popularity.sum())

    def shard(self, number: int, first_user: int) -> pd.DataFrame:
        """The clicks of users first_user .. first_user + USERS_PER_SHARD - 1, in time order."""
        rng = np.random.default_rng([self.params.seed, 1, number])
        counts = self.counts[first_user : first_user + USERS_PER_SHARD]
        rows = int(counts.sum())
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        topics = len(self.topic_starts) - 1
        # The interest walks on the ring of topics: mostly stays, else steps a little.
        steps = np.where(rng.random(rows) < self.params.stay_probability, 0, rng.integers(-2, 3, size=rows))
        steps[starts] = rng.integers(0, topics, size=len(counts))  # each user's first topic
        walk = np.cumsum(steps)
        topic = (walk - np.repeat(walk[starts] - steps[starts], counts)) % topics
        draw = rng.random(rows)
        local = np.searchsorted(self.within_topic_cdf, topic + draw, side="right")
        anywhere = np.searchsorted(self.global_cdf, draw, side="right")
        explore = rng.random(rows) < self.params.explore_probability
        items = self.item_ids[np.minimum(np.where(explore, anywhere, local), len(self.item_ids) - 1)]
        gaps = rng.exponential(86_400.0, size=rows).astype(np.int64) + 1
        gaps[starts] = rng.integers(1_420_070_400, 1_577_836_800, size=len(counts))  # first click in 2015-2019
        clock = np.cumsum(gaps)
        timestamps = clock - np.repeat(clock[starts] - gaps[starts], counts)
        return pd.DataFrame({
            "user_id": np.repeat(np.arange(first_user + 1, first_user + len(counts) + 1, dtype=np.int64), counts),
            "item_id": items.astype(np.int64),
            "rating": rng.integers(1, 11, size=rows) / 2.0,  # half stars, as ml-25m
            "timestamp": timestamps,
        })


def _pareto_counts(num_users: int, num_items: int, num_rows: int, params: SyntheticParams,
                   rng: np.random.Generator) -> np.ndarray:
    """Clicks per user: Pareto-tailed, >= min_user_clicks, <= half the items, summing to N.

    Counts are ``min(low + scale * weight, cap)`` with the scale found by bisection, so
    the cap on the heaviest users does not flatten the others' tail."""
    low = params.min_user_clicks
    if low * num_users > num_rows:
        raise ValueError(f"synthetic.min_user_clicks = {low}: {num_users} users of at least {low} clicks need more "
                         f"than {num_rows} interactions")
    cap = max(low + 1, num_items // 2)  # leaves every user enough unseen items for 99 negatives
    if num_users * cap < num_rows:
        raise ValueError(f"{num_rows} interactions do not fit {num_users} users of at most {cap} clicks")
    weights = rng.pareto(params.activity_shape, size=num_users)
    small, large = 0.0, float(num_rows)
    for _ in range(100):
        scale = (small + large) / 2
        if np.minimum(low + np.floor(scale * weights), cap).sum() > num_rows:
            large = scale
        else:
            small = scale
    counts = np.minimum(low + np.floor(small * weights), cap).astype(np.int64)
    room = np.flatnonzero(counts < cap)  # the flooring's remainder: one more click each
    counts[rng.choice(room, size=num_rows - int(counts.sum()), replace=False)] += 1
    return counts
