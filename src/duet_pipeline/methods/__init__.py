"""Personalisation methods: how a device gets the model it scores its candidates with.

A method is one module in this package with a module-level ``SPEC``
(:class:`~duet_pipeline.methods.common.MethodSpec`) and the functions it declares:

- ``personalize(bundle, devices, options, variant) -> Personalization``: scores of the
  devices' candidates, in row order, plus a per-device cost report;
- for ``cloud_model="own"``: ``train(name, data, options, variant, base_bundle,
  on_epoch_end) -> Trained`` and ``needs_base_model(options, variant) -> bool``.

Its parameters are one block, ``personalization.<block>`` in
conf/base/parameters_personalization.yml. The registry below finds every such module,
so adding a method is adding its module and its YAML block: the pipelines, the grid,
the reports, the notebook and the benchmarks are built from :data:`METHODS`.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pandas as pd

from duet_pipeline.evaluation.predictions import predictions_frame
from duet_pipeline.parameters import Block, ParameterError, parse_block
from duet_pipeline.training.models import EpochCallback, train_base
from duet_pipeline.samples import SampleTensors

from .common import CloudData, Devices, MethodSpec, Personalization, Trained


@dataclass(frozen=True)
class Method:
    """One selectable method name (a variant of a method module)."""

    name: str
    spec: MethodSpec
    module: ModuleType

    @property
    def variant(self) -> dict[str, Any]:
        return self.spec.variants[self.name]

    @property
    def key(self) -> str:
        """An identifier for dataset and node names: 'duet+swa' -> 'duet_swa'."""
        return re.sub(r"[^0-9A-Za-z]+", "_", self.name).strip("_")

    @property
    def model_name(self) -> str:
        """The cloud model it uses: 'base' (shared), the model its variant names (variants
        read from one training, e.g. DCCL's 'dccl') or its own key."""
        if self.spec.cloud_model == "base":
            return "base"
        return self.variant.get("model", self.key)

    @property
    def on_device(self) -> str:
        """What the device does (the spec's, unless the variant says otherwise)."""
        return self.variant.get("on_device", self.spec.on_device)

    def device_bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """The model bundle every device runs, from its cloud model's bundle: the bundle itself,
        unless the module keeps more in it (``device_bundle(bundle, variant)``)."""
        extract = getattr(self.module, "device_bundle", None)
        return bundle if extract is None else extract(bundle, self.variant)

    def parse_options(self, block: dict[str, Any] | None) -> Block | None:
        """This method's ``personalization.<block>`` parameters, parsed (None: it reads none)."""
        if self.spec.block is None:
            return None
        if block is None:
            raise ParameterError(f"missing parameter block personalization.{self.spec.block} (method {self.name})")
        return parse_block(self.spec.options, block, f"personalization.{self.spec.block}")

    def needs_base_model(self, options: Block | None) -> bool:
        """Whether it reads the base model: as its cloud model, or to start from it."""
        if self.spec.cloud_model == "base":
            return True
        return bool(self.module.needs_base_model(options, self.variant))

    def train(self, data: CloudData, options: Block | None, base_bundle: dict[str, Any] | None = None,
              on_epoch_end=None) -> Trained:
        return self.module.train(self.name, data, options, self.variant, base_bundle, on_epoch_end)

    def personalize(self, bundle: dict[str, Any], devices: Devices, options: Block | None) -> Personalization:
        return self.module.personalize(bundle, devices, options, self.variant)

    # The two steps of a cell, shared by the Kedro stages and the grid so a fix lands once.

    def train_cloud_model(self, data: CloudData, options: Block | None, base_bundle: dict[str, Any] | None = None,
                          on_epoch_end: EpochCallback | None = None) -> Trained:
        """The cloud model this method's cells read: the shared base model, or its own
        recipe's (``base_bundle``: the base model, where the recipe starts from it)."""
        if self.spec.cloud_model == "base":
            return train_base(data, on_epoch_end)
        return self.train(data, options, base_bundle, on_epoch_end)

    def predictions(self, bundle: dict[str, Any], candidates: SampleTensors, own_rows: SampleTensors | None,
                    options: Block | None) -> tuple[pd.DataFrame, dict[str, float]]:
        """Every device personalised and its candidates scored, in the ``predictions``
        layout, with the method's per-device cost report; ``own_rows`` are read only by a
        method that trains on the device."""
        devices = Devices(candidates=candidates, own_rows=own_rows if self.spec.reads_own_rows else None)
        result = self.personalize(bundle, devices, options)
        return predictions_frame(candidates, result.scores, self.name), dict(result.report)

    def reference_auc(self, source: str, dataset: str, backbone: str) -> float | None:
        """The published test AUC ('paper' or 'reproduction') of this cell, if any."""
        table = self.spec.paper_auc if source == "paper" else self.spec.reproduction_auc
        return table.get(self.name, {}).get(dataset, {}).get(backbone)


def _discover() -> dict[str, Method]:
    found: list[tuple[int, str, Method]] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, MethodSpec):
            found += [(spec.order, info.name, Method(name, spec, module)) for name in spec.variants]
    methods: dict[str, Method] = {}
    for _, _, method in sorted(found, key=lambda entry: entry[:2]):  # stable: variants keep their order
        if method.name in methods:
            raise ValueError(f"method '{method.name}' is declared by two modules")
        methods[method.name] = method
    _check_registry(list(methods.values()))
    return methods


def _check_registry(methods: list[Method]) -> None:
    """What the pipelines and reports rely on: one baseline, distinct dataset keys that
    do not take the base model's, one module per parameter block and per cloud model, an
    own recipe's functions."""
    if sum(m.spec.baseline for m in methods) != 1:
        raise ValueError(f"exactly one method must be the baseline, got {[m.name for m in methods if m.spec.baseline]}")
    keys = [m.key for m in methods]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two methods share a dataset key: {sorted(k for k in keys if keys.count(k) > 1)}")
    blocks, models = {}, {}
    for method in methods:
        if method.spec.cloud_model == "own":
            if models.setdefault(method.model_name, method.module) is not method.module:
                raise ValueError(f"cloud model '{method.model_name}' is trained by two modules")
            if method.key == "base":
                raise ValueError("a method with its own cloud model cannot be keyed 'base' (the shared base model)")
            missing = [f for f in ("train", "needs_base_model") if not hasattr(method.module, f)]
            if missing:
                raise ValueError(f"method '{method.name}' has its own cloud model but its module lacks {missing}")
        if method.spec.block is not None and blocks.setdefault(method.spec.block, method.module) is not method.module:
            raise ValueError(f"parameter block personalization.{method.spec.block} is claimed by two modules")


METHODS: dict[str, Method] = _discover()


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ParameterError(f"unknown method {name!r}; valid choices: {method_names()}")
    return METHODS[name]


def baseline() -> Method:
    """The method every other is compared to (the shipped base model)."""
    return next(m for m in METHODS.values() if m.spec.baseline)


def parameter_blocks() -> dict[str, type[Block]]:
    """Every method module's parameter block: block name -> options model."""
    return {m.spec.block: m.spec.options for m in METHODS.values() if m.spec.block is not None}


__all__ = ["METHODS", "CloudData", "Devices", "Method", "MethodSpec", "Personalization", "Trained",
           "baseline", "get_method", "method_names", "parameter_blocks"]
