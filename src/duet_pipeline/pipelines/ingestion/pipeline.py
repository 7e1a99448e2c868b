"""Ingestion: the raw ratings named by ``params:dataset``; for synthetic-<N>, generated first."""
from kedro.pipeline import Pipeline, node, pipeline

from duet_pipeline.data.synthetic import is_synthetic
from duet_pipeline.pipelines import selection

from .nodes import generate_synthetic, ingest_ratings, ingest_shards


def create_pipeline(**kwargs) -> Pipeline:
    if is_synthetic(selection.current().dataset):
        return pipeline([
            node(generate_synthetic, inputs=["params:dataset", "params:synthetic", "params:features"], outputs="synthetic_ratings",
                 name="generate_synthetic"),
            node(ingest_shards, inputs=["params:dataset", "synthetic_ratings"], outputs=["interactions", "item_index"],
                 name="ingest_ratings"),
        ])
    return pipeline([node(ingest_ratings, inputs=["params:dataset", "params:raw_data"],
                          outputs=["interactions", "item_index"], name="ingest_ratings")])
