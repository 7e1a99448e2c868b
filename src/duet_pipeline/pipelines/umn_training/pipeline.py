"""UMN training: the base model (shared backbone + static head), where a selected method needs it."""
from kedro.pipeline import Node, Pipeline, node

from ..building import SAMPLES, SHARED_MODEL_PARAMETERS, backbone_inputs, bound
from ..selection import Selection, current
from .nodes import train_base_model


def train_base_node(backbone: str | None) -> Node:
    inputs, fixed = backbone_inputs(backbone)
    return node(bound(train_base_model, **fixed), inputs={**SAMPLES, **inputs, **SHARED_MODEL_PARAMETERS},
                outputs=["base_model", "base_training_history", "base_training_metrics"], name="train_base_model")


def build(selection: Selection, backbone: str | None = None) -> Pipeline:
    return Pipeline([train_base_node(backbone)] if selection.needs_base_model else [])


def create_pipeline(**kwargs) -> Pipeline:
    return build(current())
