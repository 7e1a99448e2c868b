"""Feature-engineering nodes: interactions -> train/validation/test samples."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.features.samples import FeatureParams, make_samples


def build_samples(
    interactions: pd.DataFrame, item_index: pd.DataFrame, features: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Sliding windows, leave-one-out split and fixed-seed negatives (PROTOCOL section 2)."""
    params = FeatureParams.from_params(features)
    samples = make_samples(
        interactions,
        item_index,
        max_seq_len=params.max_seq_len,
        min_user_interactions=params.min_user_interactions,
        min_rating=params.min_rating,
        negatives=params.negatives.model_dump(),
        seed=params.seed,
    )
    return samples["train"], samples["validation"], samples["test"]
