"""Generated MovieLens-like ratings, for tests and for benchmarks at ml-1m scale.

The real ml-1m ratings are not redistributable (and not available offline here), so
speed is measured on a file of the same shape: same row, user and item counts, every
user with at least 20 ratings, item popularity skewed like real catalogues, no
repeated (user, item) pair.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .movielens import get_spec


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


def write_ratings(ratings: pd.DataFrame, directory: str | Path, dataset: str) -> Path:
    """Write ``ratings`` in the raw layout of ``dataset``; returns the file path."""
    spec = get_spec(dataset)
    path = Path(directory) / spec.ratings_file
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ratings[["user_id", "item_id", "rating", "timestamp"]].copy()
    if spec.max_rating == 5 and spec.min_rating == 1:
        columns["rating"] = columns["rating"].round().astype(int)
    if spec.separator == "::":
        # pandas writes one-character separators only: write tabs, then swap them.
        text = columns.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
        path.write_text(text.replace("\t", "::"))
    else:
        columns.to_csv(
            path,
            sep=spec.separator,
            header=["userId", "movieId", "rating", "timestamp"] if spec.has_header else False,
            index=False,
            lineterminator="\r\n" if spec.has_header else "\n",
        )
    return path
