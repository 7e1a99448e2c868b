"""On-device personalisation nodes: each method scores every device's candidates."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from duet_pipeline.evaluation.reporting import predictions_frame
from duet_pipeline.methods import Devices, get_method
from duet_pipeline.models.recommender import load_model
from duet_pipeline.training.tensors import to_tensors

logger = logging.getLogger(__name__)


def _personalize(
    method: str, model_bundle: dict[str, Any], train_samples: pd.DataFrame | None,
    test_samples: pd.DataFrame, options: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    own_rows = None if train_samples is None else to_tensors(train_samples)
    devices = Devices(candidates=to_tensors(test_samples), own_rows=own_rows)
    label = model_bundle["method"] if method == "duet" else method
    result = get_method(method).personalize(load_model(model_bundle), devices, options.get(method, {}))
    logger.info("%s: %s", label, ", ".join(f"{k}={v:.4g}" for k, v in result.report.items()))
    return predictions_frame(test_samples, result.scores, label), {"method": label, **result.report}


def finetune_devices(
    base_model: dict[str, Any], train_samples: pd.DataFrame, test_samples: pd.DataFrame,
    personalization: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-device fine-tuning of the base model on the device's own rows, then scoring."""
    return _personalize("finetune", base_model, train_samples, test_samples, personalization)


def generate_device_heads(
    duet_model: dict[str, Any], test_samples: pd.DataFrame, personalization: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """DUET: heads generated in the cloud from each device's history, scored on the device.

    No device trains, so the devices' own past rows are not needed.
    """
    return _personalize("duet", duet_model, None, test_samples, personalization)
