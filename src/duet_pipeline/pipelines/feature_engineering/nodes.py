"""Feature-engineering nodes: interactions -> train/validation/test samples."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.features.samples import make_samples


def build_samples(
    interactions: pd.DataFrame, item_index: pd.DataFrame, features: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Sliding windows, leave-one-out split and fixed-seed negatives (PROTOCOL section 2)."""
    samples = make_samples(
        interactions,
        item_index,
        max_seq_len=int(features["max_seq_len"]),
        min_user_interactions=int(features["min_user_interactions"]),
        min_rating=features.get("min_rating"),
        negatives=features["negatives"],
        seed=int(features["seed"]),
    )
    return samples["train"], samples["validation"], samples["test"]
