"""Replay nodes: one method's replay under every policy; the table, plot and metrics of all."""
from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from duet_pipeline.methods import get_method
from duet_pipeline.models.recommender import load_model
from duet_pipeline.replay.evaluate import ReplayParams, replay_method
from duet_pipeline.replay.learned import export_policy, load_policy
from duet_pipeline.replay.report import combined, replay_chart, replay_markdown, replay_metrics
from duet_pipeline.replay.streams import streams_from_samples
from duet_pipeline.training.tracking import final_metrics

logger = logging.getLogger(__name__)


def replay_one_method(method: str, model_bundle: dict[str, Any], test_samples: pd.DataFrame, replay: dict[str, Any],
                      policy_samples: pd.DataFrame | None = None) -> tuple[Any, ...]:
    """``method``'s device model replayed on every device's stream under every policy:
    (table rows, cost report[, learned policy bundle, its ONNX bytes])."""
    params = ReplayParams.from_params(replay)
    model = load_model(get_method(method).device_bundle(model_bundle))
    policy_streams = None if policy_samples is None else streams_from_samples(policy_samples)
    result = replay_method(model, method, streams_from_samples(test_samples), policy_streams, params)
    logger.info("replay %s: %s", method, ", ".join(f"{k}={v:.4g}" for k, v in result.costs.items()))
    report = {"method": method, **result.costs}
    if result.policy is None:
        return result.rows, report
    return result.rows, report, result.policy, export_policy(load_policy(result.policy))


def report_replay(dataset: str, backbone: str, **outputs: Any) -> tuple[pd.DataFrame, str, plt.Figure, dict[str, Any]]:
    """Every replayed method's rows (keyword ``<key>``) and cost report (``<key>_report``) ->
    the table, its markdown headline, the plot and the MLflow metrics."""
    tables = {key: value for key, value in outputs.items() if not key.endswith("_report")}
    costs = {value["method"]: value for key, value in outputs.items() if key.endswith("_report")}
    table = combined(tables)
    title = f"{dataset} / {backbone}, replay"
    metrics = final_metrics(replay_metrics(table))
    return table, replay_markdown(table, title, costs), replay_chart(table, title), metrics
