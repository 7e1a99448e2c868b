"""Shapes that MLflow metric-history datasets accept, built from plain tables."""
from __future__ import annotations

import re

import pandas as pd


# MLflow 3's UI opens an experiment on its GenAI "Traces" page unless the experiment says it
# holds model-development runs; every experiment the project creates carries this tag.
RUNS_EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def mlflow_metric_name(name: str) -> str:
    """MLflow rejects '@' in metric names: 'ndcg@10' is logged as 'ndcg_at_10'."""
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", name.replace("@", "_at_"))


def metric_history(history: pd.DataFrame, step_column: str = "epoch") -> dict[str, list[dict[str, float]]]:
    """Per-epoch columns -> {metric: [{"value", "step"}, ...]} (one MLflow history each)."""
    return {
        mlflow_metric_name(column): [
            {"value": float(value), "step": int(step)}
            for step, value in zip(history[step_column], history[column])
        ]
        for column in history.columns
        if column != step_column
    }


def final_metrics(metrics: dict[str, float], prefix: str = "") -> dict[str, dict[str, float]]:
    """{metric: value} -> {prefix+metric: {"value", "step": 0}} for a single logged value."""
    return {mlflow_metric_name(f"{prefix}{name}"): {"value": float(value), "step": 0} for name, value in metrics.items()}
