"""Ingestion nodes: raw MovieLens ratings -> interactions + item index."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.data.movielens import RawDataParams, build_item_index, ensure_ratings_file, read_ratings


def ingest_ratings(dataset: str, raw_data: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Locate (or download) the ratings of ``dataset`` and read them with validation.

    Returns the ``interactions`` (user_id, item_id, rating, timestamp, row_order) and
    the ``item_index`` (raw_item_id -> 1..N).
    """
    raw = RawDataParams.from_params(raw_data)
    path = ensure_ratings_file(dataset, data_dir=raw.data_dir, fallback_root=raw.fallback_root, download=raw.download)
    interactions = read_ratings(path, dataset)
    return interactions, build_item_index(interactions)
