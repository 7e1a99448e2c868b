"""Evaluation: every selected method's test predictions -> metrics, comparison, plot (PROTOCOL section 5)."""
from kedro.pipeline import Pipeline, node

from ..building import backbone_inputs, bound
from ..selection import Selection, current
from .nodes import report_activity, report_comparison, report_metrics


def build(selection: Selection, backbone: str | None = None) -> Pipeline:
    inputs, fixed = backbone_inputs(backbone)
    return Pipeline([
        node(report_metrics, inputs={m.key: f"{m.key}_predictions" for m in selection.methods},
             outputs=["all_predictions", "metrics_table", "test_mlflow_metrics"], name="report_metrics"),
        node(bound(report_comparison, **fixed),
             inputs={"metrics_table": "metrics_table", "dataset": "params:dataset", **inputs,
                     **{m.key: f"{m.key}_report" for m in selection.methods}},
             outputs=["comparison_markdown", "device_table", "auc_chart", "personalization_mlflow_metrics"],
             name="report_comparison"),
        node(report_activity, inputs=["all_predictions", "train_samples"], outputs="activity_table",
             name="report_activity"),
    ])


def create_pipeline(**kwargs) -> Pipeline:
    return build(current())
