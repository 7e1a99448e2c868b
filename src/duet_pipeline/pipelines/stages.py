"""The stages of the full DUET flow, shared by the composed ``duet`` and ``duet_all`` runs."""
from __future__ import annotations

from kedro.pipeline import Pipeline

from . import evaluation, feature_engineering, ingestion, personalization, ppg_training, umn_training

# In data-flow order. The data stages run once; the model stages once per backbone.
DATA_STAGES = (ingestion, feature_engineering)
MODEL_STAGES = (umn_training, ppg_training, personalization, evaluation)


def compose(stages) -> Pipeline:
    return sum((stage.create_pipeline() for stage in stages), Pipeline([]))
