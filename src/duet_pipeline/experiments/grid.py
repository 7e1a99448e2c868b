"""Which cells a grid holds, which training each needs, and the hash that identifies it.

A *cell* is one (dataset, backbone, method, seed) result. Cells that share a trained
model share a *unit* of work: ``base`` and ``finetune`` both start from the base model,
so one base training serves both; each DUET variant is its own training.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from duet_pipeline.models.backbones import BACKBONES

# method label -> the `ppg` parameters that make it (PROTOCOL section 3). Labels follow
# `duet_variant_name`: "+swa" = several SWA generators, "-pa-<kind>" = position weights.
DUET_VARIANTS: dict[str, dict[str, Any]] = {
    "duet": {"num_generators": 1, "position_weights": "none"},
    "duet+swa": {"num_generators": 4, "position_weights": "none"},
    **{
        f"duet-pa-{kind}": {"num_generators": 1, "position_weights": kind}
        for kind in ("linear", "smooth", "exp", "gaussian")
    },
}
BASE_METHODS = ("base", "finetune")  # both read the one base model of their (backbone, seed)
METHODS = (*BASE_METHODS, *DUET_VARIANTS)

# Parameters that change what is displayed, never what is computed: left out of the hash.
_DISPLAY_ONLY = {"progress"}


@dataclass(frozen=True)
class Cell:
    dataset: str
    backbone: str
    method: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.backbone} {self.method} seed={self.seed}"


@dataclass
class Unit:
    """One model training and the cells read from it; ``params`` are fully resolved."""

    dataset: str
    backbone: str
    seed: int
    model: str  # "base" or a DUET variant label
    cells: list[Cell]
    params: dict[str, Any] = field(repr=False)
    data_version: str = ""

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.backbone} {self.model} seed={self.seed}"

    def cell_params(self, cell: Cell) -> dict[str, Any]:
        """The parameters a cell's result depends on (and nothing else)."""
        relevant = {key: self.params[key] for key in ("features", "model", "training", "backbone")}
        if cell.method == "finetune":
            relevant["personalization"] = self.params["personalization"]["finetune"]
        elif cell.method in DUET_VARIANTS:
            relevant["ppg"] = self.params["ppg"]
            relevant["personalization"] = self.params["personalization"]["duet"]
        return relevant

    def cell_hash(self, cell: Cell) -> str:
        return config_hash(
            {"cell": [cell.dataset, cell.backbone, cell.method, cell.seed],
             "data_version": self.data_version, "params": self.cell_params(cell)}
        )


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able configuration, display-only keys removed."""
    text = json.dumps(_without_display_keys(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_display_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_display_keys(v) for k, v in value.items() if k not in _DISPLAY_ONLY}
    if isinstance(value, list):
        return [_without_display_keys(v) for v in value]
    return value


def validate_choices(backbones: list[str], methods: list[str]) -> None:
    unknown = [b for b in backbones if b not in BACKBONES]
    if unknown:
        raise ValueError(f"unknown backbone(s) {unknown}; valid choices: {sorted(BACKBONES)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid choices: {list(METHODS)}")


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["training.max_epochs=2", ...]`` applied to a copy of ``params`` (values parsed as YAML)."""
    params = copy.deepcopy(params)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ValueError(f"override '{override}' is not of the form key.path=value")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"override '{override}': parameter '{part}' is not a section of the parameters")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"override '{override}': no parameter '{key}' (see conf/base/parameters_*.yml)")
        node[leaf] = yaml.safe_load(raw)
    return params


def plan_units(
    params: dict[str, Any], dataset: str, backbones: list[str], methods: list[str], seeds: list[int],
    data_version: str,
) -> list[Unit]:
    """The units that produce the requested cells: all base units first (they are the
    cheapest and warm-started DUET needs them), then DUET units seed by seed, so a grid
    stopped half-way has every method at the first seeds rather than every seed of a few."""
    validate_choices(backbones, methods)
    units = []
    for seed in seeds:
        for backbone in backbones:
            cells = [Cell(dataset, backbone, m, seed) for m in BASE_METHODS if m in methods]
            if cells:
                units.append(_unit(params, dataset, backbone, seed, "base", cells, data_version))
    for seed in seeds:
        for method in (m for m in DUET_VARIANTS if m in methods):
            for backbone in backbones:
                units.append(_unit(params, dataset, backbone, seed, method,
                                   [Cell(dataset, backbone, method, seed)], data_version))
    return units


def _unit(params, dataset, backbone, seed, model, cells, data_version) -> Unit:
    resolved = copy.deepcopy(params)
    resolved["dataset"], resolved["backbone"] = dataset, backbone
    resolved["training"]["seed"] = seed
    resolved["training"]["progress"] = False
    resolved["personalization"]["finetune"]["progress"] = False
    if model in DUET_VARIANTS:
        resolved["ppg"].update(DUET_VARIANTS[model])
    return Unit(dataset, backbone, seed, model, cells, resolved, data_version)
