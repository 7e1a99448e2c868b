"""Evaluation: test predictions of every method -> metrics table (PROTOCOL section 5)."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import predict_base, report_metrics


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(predict_base, inputs=["base_model", "test_samples"], outputs="base_predictions",
                 name="predict_base"),
            node(report_metrics, inputs=["base_predictions"],
                 outputs=["predictions", "metrics_table", "test_metrics"], name="report_metrics"),
        ]
    )
