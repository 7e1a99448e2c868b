"""DCCL nodes: each stage of a round (methods/dccl.py), and the rounds' report."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from duet_pipeline.methods import get_method
from duet_pipeline.methods import dccl
from duet_pipeline.training.loop import TrainingConfig
from duet_pipeline.training.tensors import to_tensors
from duet_pipeline.training.tracking import metric_history

from ..umn_training.nodes import cloud_data

logger = logging.getLogger(__name__)


def _options(options: dict[str, Any]) -> dccl.DcclOptions:
    return get_method("metapatch").parse_options(options)


def start_dccl(base_model: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Round 0's cloud: the base model and a random Theta."""
    return dccl.start_round(base_model, _options(options))


def train_device_metapatches(cloud_model: dict[str, Any], train_samples: pd.DataFrame, options: dict[str, Any],
                             previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every device trains its meta-patch on its own rows (from the previous round's)."""
    return dccl.device_round(cloud_model, to_tensors(train_samples), _options(options), previous)


def distill_cloud(cloud_model: dict[str, Any], device_model: dict[str, Any], train_samples: pd.DataFrame,
                  validation_samples: pd.DataFrame, item_index: pd.DataFrame, backbone: str, model: dict[str, Any],
                  backbones: dict[str, Any], training: dict[str, Any],
                  options: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """MoMoDistill: the next cloud model, its per-epoch history and that history for MLflow."""
    data = cloud_data(train_samples, validation_samples, item_index, backbone, model, backbones, training)
    distilled, history = dccl.distill_round(cloud_model, device_model, data, _options(options))
    return distilled, history, metric_history(history)


def update_theta(distilled_model: dict[str, Any], device_model: dict[str, Any], train_samples: pd.DataFrame,
                 training: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Theta fitted to the devices' meta-patches on the distilled cloud model."""
    cloud, report = dccl.theta_round(distilled_model, device_model, to_tensors(train_samples),
                                     TrainingConfig.from_params(training), _options(options))
    logger.info("dccl round %d: Theta fitted, train loss %.4f", cloud["round"], report["theta_loss"])
    return cloud


def evaluate_round(cloud_model: dict[str, Any], device_model: dict[str, Any], validation_samples: pd.DataFrame,
                   test_samples: pd.DataFrame) -> dict[str, float]:
    """A round's cloud model and device models on validation and test."""
    metrics = {"round": float(cloud_model["round"]), **device_model["report"]}
    for split, samples in (("val", validation_samples), ("test", test_samples)):
        scores = dccl.round_metrics(cloud_model, device_model, to_tensors(samples))
        metrics.update({f"{split}_{name}": value for name, value in scores.items()})
    return metrics


def report_rounds(**round_reports: dict[str, float]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per round (the table under data/08_reporting), and each metric's history
    over the rounds for MLflow (step = round)."""
    table = pd.DataFrame(list(round_reports.values())).sort_values("round", ignore_index=True)
    table["round"] = table["round"].astype(int)
    shown = ["round", "test_cloud_auc", "test_devices_auc", "test_cloud_ndcg@10", "test_devices_ndcg@10"]
    logger.info("DCCL rounds (test):\n%s", table[shown].to_string(index=False, float_format="%.4f"))
    return table, metric_history(table, step_column="round")
