"""Feature-engineering nodes: interactions -> train/validation/test samples, by engine."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.features.samples import FeatureParams, check_fits_in_memory, make_samples


def build_samples(
    interactions: pd.DataFrame, item_index: pd.DataFrame, features: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Sliding windows, leave-one-out split and keyed negatives (PROTOCOL section 2), in pandas."""
    check_fits_in_memory(len(interactions))
    samples = make_samples(interactions, item_index, **FeatureParams.from_params(features).sample_options())
    return samples["train"], samples["validation"], samples["test"]


def build_replay_samples(
    interactions: pd.DataFrame, item_index: pd.DataFrame, features: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The replay split (PROTOCOL section 10): train, validation, every replayed click as
    test, and the train period's last clicks as the request policy's streams."""
    check_fits_in_memory(len(interactions))
    samples = make_samples(interactions, item_index, **FeatureParams.from_params(features).sample_options())
    return samples["train"], samples["validation"], samples["test"], samples["policy"]


def build_samples_spark(interactions: Any, item_index: Any, features: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The same samples from Spark DataFrames (``features.engine: spark``)."""
    from duet_pipeline.features.spark_samples import make_samples_spark  # pyspark only when chosen

    samples = make_samples_spark(interactions, item_index, **FeatureParams.from_params(features).sample_options())
    return samples["train"], samples["validation"], samples["test"]
