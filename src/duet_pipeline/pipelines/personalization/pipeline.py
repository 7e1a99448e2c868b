"""Personalisation: one node per selected method gives every simulated device its model."""
from kedro.pipeline import Pipeline, node

from ..building import bound, method_options, model_dataset
from ..selection import Selection, current
from .nodes import personalize_devices


def build(selection: Selection) -> Pipeline:
    nodes = []
    for method in selection.methods:
        own_rows = {"train_samples": "train_samples"} if method.spec.reads_own_rows else {}
        nodes.append(node(
            bound(personalize_devices, method=method.name),
            inputs={"model_bundle": model_dataset(method), "test_samples": "test_samples", **own_rows,
                    **method_options(method)},
            outputs=[f"{method.key}_predictions", f"{method.key}_report"],
            name=f"personalize_{method.key}",
        ))
    return Pipeline(nodes)


def create_pipeline(**kwargs) -> Pipeline:
    return build(current())
