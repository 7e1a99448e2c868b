"""Project pipelines, discovered from ``pipelines/<name>/`` by ``find_pipelines``.

Stages: ingestion, feature_engineering, umn_training, method_training, personalization,
evaluation (the model stages built from the ``methods`` parameter). Composed runs:
``duet`` (the whole flow, default), ``duet_all`` (every backbone, namespaced) and
``dccl`` (the DCCL loop, one node per stage of every round).
"""
from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from duet_pipeline.pipelines import selection
from duet_pipeline.pipelines.transcoding import transcoded_datasets, with_pandas_names


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    transcoded = transcoded_datasets(selection.current())
    pipelines = {name: with_pandas_names(pipe, transcoded) for name, pipe in pipelines.items()}
    if "duet" in pipelines:
        pipelines["__default__"] = pipelines["duet"]
    return pipelines
