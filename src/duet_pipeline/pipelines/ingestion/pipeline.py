"""Ingestion: read the raw ratings named by ``params:dataset``."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import ingest_ratings


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                ingest_ratings,
                inputs=["params:dataset", "params:raw_data"],
                outputs=["interactions", "item_index"],
                name="ingest_ratings",
            )
        ]
    )
