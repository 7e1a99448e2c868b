"""The stages of the full flow, built from the method registry and the run's selection.

Data stages run once. Model stages depend on the ``methods`` parameter: the base model
is trained when a selected method needs it (base, finetune, a warm-started DUET); each
selected method with its own cloud recipe gets a training node; every selected method
gets one personalisation node; evaluation compares them all. Every method is one branch
of the DAG: ``train_<key>_model`` -> ``<key>_model`` -> ``personalize_<key>`` ->
``<key>_predictions``.

``backbone`` None reads ``params:backbone``; a name fixes it (``duet_all``'s namespaces).
"""
from __future__ import annotations

from kedro.pipeline import Pipeline

from .evaluation.pipeline import build as evaluation
from .feature_engineering.pipeline import create_pipeline as feature_engineering
from .ingestion.pipeline import create_pipeline as ingestion
from .method_training.pipeline import build as method_training
from .personalization.pipeline import build as personalization
from .selection import Selection
from .transcoding import for_this_run
from .umn_training.pipeline import build as umn_training


def data_stages() -> Pipeline:
    return for_this_run(ingestion()) + for_this_run(feature_engineering())


def training_stages(selection: Selection, backbone: str | None = None) -> Pipeline:
    """The cloud models the selected methods read (the base model where one needs it)."""
    return for_this_run(umn_training(selection, backbone)) + for_this_run(method_training(selection, backbone))


def model_stages(selection: Selection, backbone: str | None = None) -> Pipeline:
    stages = (personalization(selection), evaluation(selection, backbone))
    return training_stages(selection, backbone) + sum((for_this_run(stage) for stage in stages), Pipeline([]))
