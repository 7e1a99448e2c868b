"""Scores -> the ``predictions`` layout every metric and report reads.

Kept apart from reporting.py, which selects matplotlib's headless backend when imported:
the method registry builds predictions, and importing it in a notebook must leave the
notebook's inline figures alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from duet_pipeline.samples import SampleTensors


def predictions_frame(rows: SampleTensors, scores: np.ndarray, method: str) -> pd.DataFrame:
    """Scored model rows (expanded samples) in the ``predictions`` layout."""
    return pd.DataFrame(
        {
            "user_id": rows.user.numpy().astype(np.int64),
            "target_item": rows.target.numpy().astype(np.int64),
            "label": rows.label.numpy().astype(np.int8),
            "score": np.asarray(scores, dtype=np.float32),
            "method": method,
        }
    )
