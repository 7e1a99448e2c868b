"""Ingestion nodes: a declared log (or the generated synthetic-<N> shards) -> interactions,
item index and the data report."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from duet_pipeline.data.declarations import DatasetDeclaration, RawDataParams, resolve_path
from duet_pipeline.data.download import ensure_present
from duet_pipeline.data.events import read_events
from duet_pipeline.data.report import data_report
from duet_pipeline.data.synthetic import SyntheticParams, synthetic_shape, synthetic_shard_names, synthetic_shards
from duet_pipeline.features.samples import FeatureParams, build_item_index, check_fits_in_memory
from duet_pipeline.training.tracking import final_metrics

logger = logging.getLogger(__name__)


def ingest(dataset: str, declaration: dict[str, Any], raw_data: dict[str, Any], features: dict[str, Any]
           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Read ``dataset`` as its declaration says (downloading a declared archive when it is
    absent), checking every value. Returns the ``interactions``, the ``item_index`` (raw item
    id -> 1..N), the data report's table and its counts for MLflow; prints the report."""
    declared = DatasetDeclaration.model_validate(declaration)
    raw = RawDataParams.from_params(raw_data)
    path = ensure_present(resolve_path(dataset, declared, raw), declared.download, raw.download)
    events = read_events(path, declared)
    feature_params = FeatureParams.from_params(features)
    report = data_report(events, feature_params.min_user_interactions, max(feature_params.negatives.model_dump().values()))
    logger.info("%s", report.text(dataset))
    for warning in report.warnings:
        logger.warning("%s: %s", dataset, warning)
    return (events.interactions, build_item_index(events.interactions), report.table,
            final_metrics(report.metrics))


def generate_synthetic(dataset: str, synthetic: dict[str, Any], features: dict[str, Any]
                       ) -> dict[str, Callable[[], pd.DataFrame]]:
    """The shards of ``synthetic-<N>``, each generated as it is written. The size is known
    from the name, so a pandas feature stage that would not fit is refused here, before
    anything is generated."""
    if FeatureParams.from_params(features).engine == "pandas":
        check_fits_in_memory(synthetic_shape(dataset)[2])
    return synthetic_shards(dataset, SyntheticParams.from_params(synthetic))


def ingest_generated(dataset: str, shards: dict[str, Callable[[], pd.DataFrame]], declaration: dict[str, Any],
                     raw_data: dict[str, Any], features: dict[str, Any]
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """The generated shards read as the declared parquet folder, as ``ingest`` reads any log.
    The shards are not versioned: a generation cut short must not pass for the dataset."""
    expected = synthetic_shard_names(dataset)
    if sorted(shards) != expected:
        raise ValueError(f"{dataset}: found {len(shards)} of its {len(expected)} shards in data/01_raw/{dataset}/shards "
                         "(a generation cut short?); run the ingestion pipeline again from generate_synthetic")
    return ingest(dataset, declaration, raw_data, features)
