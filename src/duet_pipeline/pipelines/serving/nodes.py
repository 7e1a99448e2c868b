"""Serving nodes: a method's cloud half to the MLflow model registry, its device half to ONNX."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from duet_pipeline.methods import get_method
from duet_pipeline.serving.config import ServingParams
from duet_pipeline.serving.device import check_device_model, export_device_model
from duet_pipeline.serving.cloud_half import log_cloud_half
from duet_pipeline.training.tensors import to_tensors

logger = logging.getLogger(__name__)


def publish_cloud_half(model_bundle: dict[str, Any], item_index: pd.DataFrame, dataset: str, backbone: str,
                       split: str, serving: dict[str, Any]) -> dict[str, Any]:
    """Log the method's cloud half as a pyfunc model to this run and register a new version."""
    params = ServingParams.from_params(serving)
    if mlflow.active_run() is None:
        raise RuntimeError("publishing the cloud half needs an MLflow run (kedro-mlflow opens one per kedro run)")
    info = log_cloud_half(model_bundle, item_index, params.registered_name,
                          {"dataset": dataset, "backbone": backbone, "split": split, "method": params.method})
    logger.info("cloud half: %s, registered as %s version %s", info.model_uri, params.registered_name,
                info.registered_model_version)
    return {"model_uri": info.model_uri, "registered_model": params.registered_name,
            "version": str(info.registered_model_version), "method": params.method}


def export_device_onnx(model_bundle: dict[str, Any], serving: dict[str, Any]) -> bytes:
    """The device's static model and its head's device half as ONNX bytes."""
    params = ServingParams.from_params(serving)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "device_model.onnx"
        export_device_model(get_method(params.method).device_bundle(model_bundle), path)
        return path.read_bytes()


def check_device_onnx(device_model_onnx: bytes, model_bundle: dict[str, Any], test_samples: pd.DataFrame,
                      serving: dict[str, Any]) -> dict[str, float]:
    """The ONNX device model against PyTorch on the test devices: largest score
    difference, file size and scoring time per device."""
    params = ServingParams.from_params(serving)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "device_model.onnx"
        path.write_bytes(device_model_onnx)
        report = check_device_model(path, get_method(params.method).device_bundle(model_bundle),
                                    to_tensors(test_samples), params.check_devices)
    logger.info("ONNX device model: %s", ", ".join(f"{k}={v:.4g}" for k, v in report.items()))
    return report
