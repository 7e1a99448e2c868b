"""UMN training: the base model (shared backbone + static head), where a selected method needs it."""
from kedro.pipeline import Node, Pipeline, node

from ..building import SAMPLES, SHARED_MODEL_PARAMETERS, backbone_inputs, bound
from ..selection import Selection, current
from .nodes import train_base_model


def train_base_node(backbone: str | None, streaming: bool = False) -> Node:
    inputs, fixed = backbone_inputs(backbone)
    # training.streaming: the node gets the train samples' files, not their rows.
    samples = {**SAMPLES, "train_samples": "train_samples@files"} if streaming else SAMPLES
    return node(bound(train_base_model, **fixed), inputs={**samples, **inputs, **SHARED_MODEL_PARAMETERS},
                outputs=["base_model", "base_training_history", "base_training_metrics"], name="train_base_model")


def build(selection: Selection, backbone: str | None = None) -> Pipeline:
    return Pipeline([train_base_node(backbone, selection.streaming)] if selection.needs_base_model else [])


def create_pipeline(**kwargs) -> Pipeline:
    return build(current())
