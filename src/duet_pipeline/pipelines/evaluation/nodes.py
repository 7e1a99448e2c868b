"""Evaluation nodes: score the test rows, compute and report the metrics."""
from __future__ import annotations

from typing import Any

import pandas as pd

from duet_pipeline.evaluation.reporting import metrics_table, predictions_frame
from duet_pipeline.models.recommender import load_base_model
from duet_pipeline.training.loop import predict
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import final_metrics


def predict_base(base_model: dict[str, Any], test_samples: pd.DataFrame) -> pd.DataFrame:
    """Score every test row with the base model (one static head for all devices)."""
    scores = predict(load_base_model(base_model), to_tensors(test_samples))
    return predictions_frame(test_samples, scores, "base")


def report_metrics(*predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """All methods' predictions -> (predictions, metrics table, MLflow test metrics)."""
    combined = pd.concat(predictions, ignore_index=True)
    table = metrics_table(combined)
    logged = {}
    for row in table.to_dict("records"):
        method = row.pop("method")
        row.pop("users")
        logged.update(final_metrics(row, prefix=f"{method}."))
    return combined, table, logged
