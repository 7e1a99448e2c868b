"""Evaluation nodes: score the base model, compute and report every method's metrics."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from duet_pipeline.evaluation.reporting import (
    auc_bar_chart,
    comparison_markdown,
    metrics_table,
    predictions_frame,
)
from duet_pipeline.models.recommender import load_model
from duet_pipeline.training.loop import predict
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import final_metrics


def predict_base(base_model: dict[str, Any], test_samples: pd.DataFrame) -> pd.DataFrame:
    """Score every test row with the base model (one static head for all devices)."""
    scores = predict(load_model(base_model), to_tensors(test_samples))
    return predictions_frame(test_samples, scores, "base")


def report_metrics(*predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """All methods' predictions -> (all predictions, metrics table, MLflow test metrics)."""
    combined = pd.concat(predictions, ignore_index=True)
    table = metrics_table(combined)
    logged = {}
    for row in table.to_dict("records"):
        method = row.pop("method")
        row.pop("users")
        logged.update(final_metrics(row, prefix=f"{method}."))
    return combined, table, logged


def report_comparison(
    metrics: pd.DataFrame, dataset: str, backbone: str, *device_reports: dict[str, Any]
) -> tuple[str, pd.DataFrame, plt.Figure, dict[str, Any]]:
    """Comparison table (markdown), per-device cost table, AUC chart and MLflow metrics."""
    devices = pd.DataFrame(device_reports)
    logged = {}
    for row in devices.to_dict("records"):
        method = row.pop("method")
        logged.update(final_metrics({k: v for k, v in row.items() if pd.notna(v)}, prefix=f"{method}."))
    title = f"{dataset} / {backbone}"
    return comparison_markdown(metrics, devices, title), devices, auc_bar_chart(metrics, title), logged
