"""Method training: one node per selected method with its own cloud recipe (e.g. DUET's
PPG + SWA, trained jointly with its backbone; PROTOCOL sections 3-4)."""
from kedro.pipeline import Pipeline, node

from ..building import SAMPLES, SHARED_MODEL_PARAMETERS, backbone_inputs, bound, method_options
from ..selection import Selection, current
from .nodes import train_method_model


def build(selection: Selection, backbone: str | None = None) -> Pipeline:
    """One training node per cloud model: variants reading one model (DCCL's metapatch and
    momodistill) share its node."""
    inputs, fixed = backbone_inputs(backbone)
    nodes = {}
    for method in selection.methods:
        if method.spec.cloud_model != "own" or method.model_name in nodes:
            continue
        model = method.model_name
        base = {"base_model": "base_model"} if method.needs_base_model(selection.options[method.name]) else {}
        nodes[model] = node(
            bound(train_method_model, method=method.name, **fixed),
            inputs={**SAMPLES, **inputs, **SHARED_MODEL_PARAMETERS, **method_options(method), **base},
            outputs=[f"{model}_model", f"{model}_training_history", f"{model}_training_metrics"],
            name=f"train_{model}_model",
        )
    return Pipeline(list(nodes.values()))


def create_pipeline(**kwargs) -> Pipeline:
    return build(current())
