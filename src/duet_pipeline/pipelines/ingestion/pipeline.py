"""Ingestion: the log that ``params:dataset`` names, read as ``params:datasets.<its key>``
declares it; a generated one (synthetic-<N>) is generated first."""
from kedro.pipeline import Pipeline, node, pipeline

from duet_pipeline.pipelines import selection

from .nodes import generate_synthetic, ingest, ingest_generated

OUTPUTS = ["interactions", "item_index", "data_report", "data_mlflow_metrics"]


def create_pipeline(**kwargs) -> Pipeline:
    chosen = selection.current()
    reading = ["params:dataset", f"params:datasets.{chosen.declared_as}", "params:raw_data", "params:features"]
    if chosen.generated:
        return pipeline([
            node(generate_synthetic, inputs=["params:dataset", "params:synthetic", "params:features"], outputs="synthetic_ratings",
                 name="generate_synthetic"),
            node(ingest_generated, inputs=[reading[0], "synthetic_ratings", *reading[1:]], outputs=OUTPUTS,
                 name="ingest_ratings"),
        ])
    return pipeline([node(ingest, inputs=reading, outputs=OUTPUTS, name="ingest_ratings")])
