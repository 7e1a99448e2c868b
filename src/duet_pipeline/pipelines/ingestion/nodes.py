"""Ingestion nodes: raw ratings (MovieLens files, or generated synthetic-<N> shards) ->
interactions + item index."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from duet_pipeline.data.movielens import RawDataParams, build_item_index, ensure_ratings_file, read_ratings
from duet_pipeline.data.synthetic import SyntheticParams, synthetic_shape, synthetic_shard_names, synthetic_shards
from duet_pipeline.features.samples import FeatureParams, check_fits_in_memory


def ingest_ratings(dataset: str, raw_data: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Locate (or download) the ratings of ``dataset`` and read them with validation.

    Returns the ``interactions`` (user_id, item_id, rating, timestamp, row_order) and
    the ``item_index`` (raw_item_id -> 1..N).
    """
    raw = RawDataParams.from_params(raw_data)
    path = ensure_ratings_file(dataset, data_dir=raw.data_dir, fallback_root=raw.fallback_root, download=raw.download)
    interactions = read_ratings(path, dataset)
    return interactions, build_item_index(interactions)


def generate_synthetic(dataset: str, synthetic: dict[str, Any], features: dict[str, Any]
                       ) -> dict[str, Callable[[], pd.DataFrame]]:
    """The shards of ``synthetic-<N>``, each generated as it is written. The size is known
    from the name, so a pandas feature stage that would not fit is refused here, before
    anything is generated."""
    if FeatureParams.from_params(features).engine == "pandas":
        check_fits_in_memory(synthetic_shape(dataset)[2])
    return synthetic_shards(dataset, SyntheticParams.from_params(synthetic))


def ingest_shards(dataset: str, shards: dict[str, Callable[[], pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic shards (in name order) -> interactions and item index, as ``ingest_ratings``.
    The shards are not versioned: a generation cut short must not pass for the dataset."""
    expected = synthetic_shard_names(dataset)
    if sorted(shards) != expected:
        raise ValueError(f"{dataset}: found {len(shards)} of its {len(expected)} shards in data/01_raw/{dataset}/shards "
                         "(a generation cut short?); run the ingestion pipeline again from generate_synthetic")
    interactions = pd.concat([shards[name]() for name in sorted(shards)], ignore_index=True)
    interactions["row_order"] = np.arange(len(interactions), dtype=np.int64)
    return interactions, build_item_index(interactions)
