"""Evaluation: every method's test predictions -> metrics, comparison, plot (PROTOCOL section 5)."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import predict_base, report_comparison, report_metrics


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(predict_base, inputs=["base_model", "test_samples"], outputs="base_predictions",
                 name="predict_base"),
            node(report_metrics,
                 inputs=["base_predictions", "finetune_predictions", "duet_predictions"],
                 outputs=["all_predictions", "metrics_table", "test_mlflow_metrics"],
                 name="report_metrics"),
            node(report_comparison,
                 inputs=["metrics_table", "params:dataset", "params:backbone", "finetune_report", "duet_report"],
                 outputs=["comparison_markdown", "device_table", "auc_chart", "personalization_mlflow_metrics"],
                 name="report_comparison"),
        ]
    )
