"""Evaluation nodes: every selected method's metrics, comparison table and plot."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from duet_pipeline.evaluation.reporting import activity_table, auc_bar_chart, comparison_markdown, metrics_table
from duet_pipeline.training.tracking import final_metrics


def report_metrics(**predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Each method's predictions (keyword = method key) -> (all predictions, metrics table,
    MLflow test metrics), in the order of the ``methods`` parameter."""
    combined = pd.concat(list(predictions.values()), ignore_index=True)
    table = metrics_table(combined)
    logged = {}
    for row in table.to_dict("records"):
        method = row.pop("method")
        row.pop("users")
        logged.update(final_metrics(row, prefix=f"{method}."))
    return combined, table, logged


def report_comparison(
    metrics_table: pd.DataFrame, dataset: str, backbone: str, **device_reports: dict[str, Any]
) -> tuple[str, pd.DataFrame, plt.Figure, dict[str, Any]]:
    """Comparison table (markdown), per-device cost table, AUC chart and MLflow metrics.

    Methods with no per-device work (their report names only the method) have no cost row.
    """
    devices = pd.DataFrame([report for report in device_reports.values() if len(report) > 1])
    logged = {}
    for row in devices.to_dict("records"):
        method = row.pop("method")
        logged.update(final_metrics({k: v for k, v in row.items() if pd.notna(v)}, prefix=f"{method}."))
    title = f"{dataset} / {backbone}"
    return comparison_markdown(metrics_table, devices, title), devices, auc_bar_chart(metrics_table, title), logged


def report_activity(all_predictions: pd.DataFrame, train_samples: pd.DataFrame) -> pd.DataFrame:
    """Every method's test metrics per user-activity quartile (train positives per user)."""
    return activity_table(all_predictions, train_samples["user_id"].to_numpy())  # a stored row is a positive
