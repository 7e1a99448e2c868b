"""UMN training: the base model (shared backbone + static head), where a selected method needs it."""
from kedro.pipeline import Pipeline, node

from ..building import SAMPLES, SHARED_MODEL_PARAMETERS, backbone_inputs, bound
from ..selection import Selection, current
from .nodes import train_base_model


def build(selection: Selection, backbone: str | None = None) -> Pipeline:
    if not selection.needs_base_model:
        return Pipeline([])
    inputs, fixed = backbone_inputs(backbone)
    return Pipeline([node(bound(train_base_model, **fixed), inputs={**SAMPLES, **inputs, **SHARED_MODEL_PARAMETERS},
                          outputs=["base_model", "base_training_history", "base_training_metrics"],
                          name="train_base_model")])


def create_pipeline(**kwargs) -> Pipeline:
    return build(current())
