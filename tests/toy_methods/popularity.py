"""A toy personalisation method, registered by being dropped into duet_pipeline/methods/.

"popularity": every device scores its candidates by how often the item is a positive in
the training rows. Its cloud "training" is the count; nothing happens on the device. It
exists to prove that a method is one module plus one YAML block (tests/pipelines).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from duet_pipeline.evaluation.metrics import compute_metrics
from duet_pipeline.methods.common import Devices, MethodSpec, Personalization
from duet_pipeline.parameters import Block
from duet_pipeline.training.models import CloudData, Trained


class PopularityOptions(Block):
    smoothing: float = Field(ge=0)  # added to every count before the log


SPEC = MethodSpec(
    variants={"popularity": {}},
    cloud_model="own",
    on_device="nothing",
    description="candidates scored by training-set item popularity",
    block="popularity",
    options=PopularityOptions,
    order=90,
)


def needs_base_model(options: PopularityOptions, variant: dict[str, Any]) -> bool:
    return False


def _scores(counts: np.ndarray, items: np.ndarray, smoothing: float) -> np.ndarray:
    return np.log(counts[items] + smoothing).astype(np.float32)


def train(name: str, data: CloudData, options: PopularityOptions, variant: dict[str, Any],
          base_bundle: dict[str, Any] | None, on_epoch_end=None) -> Trained:
    positives = data.train.target[data.train.label > 0].numpy()
    counts = np.bincount(positives, minlength=data.num_items + 1).astype(np.float64)
    validation = data.validation
    metrics = compute_metrics(validation.user.numpy(), validation.label.numpy(),
                              _scores(counts, validation.target.numpy(), options.smoothing))
    history = pd.DataFrame([{"epoch": 1, "train_loss": 0.0, "train_seconds": 0.0, "train_rows_per_second": 0.0,
                             **{f"val_{k}": v for k, v in metrics.items()}}])
    return Trained({"method": name, "counts": counts}, history, best_epoch=1)


def personalize(bundle: dict[str, Any], devices: Devices, options: PopularityOptions,
                variant: dict[str, Any]) -> Personalization:
    return Personalization(_scores(bundle["counts"], devices.candidates.target.numpy(), options.smoothing))
