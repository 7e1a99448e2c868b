"""What the stage pipelines share: how a node gets its backbone, options and model."""
from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any, Callable

from duet_pipeline.methods import Method

SAMPLES = {"train_samples": "train_samples", "validation_samples": "validation_samples", "item_index": "item_index"}
SHARED_MODEL_PARAMETERS = {"model": "params:model", "backbones": "params:backbones", "training": "params:training"}


class NamedPartial(partial):
    """A ``functools.partial`` that keeps its name and docstring when it crosses to a worker
    process: multiprocessing pickles a plain partial without them (its reducer for
    ``partial`` drops ``__dict__``), and Kedro then logs and warns about a nameless node."""


def bound(function: Callable, **fixed: Any) -> Callable:
    """``function`` with some arguments fixed, keeping its name and docstring for kedro viz."""
    return update_wrapper(NamedPartial(function, **fixed), function) if fixed else function


def backbone_inputs(backbone: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(node inputs, fixed arguments) that give a node its backbone."""
    return ({"backbone": "params:backbone"}, {}) if backbone is None else ({}, {"backbone": backbone})


def method_options(method: Method) -> dict[str, str]:
    return {} if method.spec.block is None else {"options": f"params:personalization.{method.spec.block}"}


def model_dataset(method: Method) -> str:
    return f"{method.model_name}_model"
