"""On-device personalisation node: one selected method scores every device's candidates."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from duet_pipeline.methods import get_method
from duet_pipeline.training.tensors import to_tensors

logger = logging.getLogger(__name__)


def personalize_devices(
    method: str, model_bundle: dict[str, Any], test_samples: pd.DataFrame,
    train_samples: pd.DataFrame | None = None, options: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``method``'s model for every device, scored on its candidates; ``train_samples``
    (the devices' own rows) only for methods that train on the device."""
    chosen = get_method(method)
    own_rows = None if train_samples is None else to_tensors(train_samples)
    predictions, report = chosen.predictions(model_bundle, to_tensors(test_samples), own_rows,
                                             chosen.parse_options(options))
    if report:
        logger.info("%s: %s", method, ", ".join(f"{k}={v:.4g}" for k, v in report.items()))
    return predictions, {"method": method, **report}
