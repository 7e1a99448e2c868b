"""Which cells a grid holds, which training each needs, and the hash that identifies it.

A *cell* is one (dataset, backbone, method, seed) result. Cells that share a trained
model share a *unit* of work: ``base`` and ``finetune`` both start from the base model,
so one base training serves both; each DUET variant is its own training; DCCL's
metapatch and momodistill read one loop.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from duet_pipeline.data.declarations import declaration_of
from duet_pipeline.features.samples import FeatureParams
from duet_pipeline.methods import get_method, method_names
from duet_pipeline.run_parameters import check_parameters

# Parameters that change what is displayed, never what is computed: left out of the hash.
_DISPLAY_ONLY = {"progress"}
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The package version and a hash of every source file under src/duet_pipeline."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        package = version("duet_pipeline")
    except PackageNotFoundError:
        package = "unknown"
    return f"{package}+{digest.hexdigest()[:12]}"


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
    model: str  # the cloud model: "base" (shared by its cells) or a method's own key
    cells: list[Cell]
    params: dict[str, Any] = field(repr=False)
    data_version: str = ""
    code_version: str = ""

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.backbone} {self.model} seed={self.seed}"

    def cell_params(self, cell: Cell) -> dict[str, Any]:
        """The parameters a cell's result depends on (and nothing else)."""
        relevant = {key: self.params[key] for key in ("features", "model", "training", "backbone")}
        # The minimum rating moved from the features block to the dataset's declaration; it
        # is hashed where it was, so that the cells recorded before the move stay current.
        # The replay split's keys are hashed only where the split is not leave-one-out, likewise.
        features = relevant["features"]
        hashed = FeatureParams.from_params(features).hashed()
        relevant["features"] = {**{key: value for key, value in features.items() if key in hashed},
                                "min_rating": declaration_of(self.dataset, self.params["datasets"]).min_rating}
        relevant["backbones"] = {self.backbone: self.params["backbones"][self.backbone]}
        # Where a training runs (its machines, their rendezvous) never changes its numbers,
        # and those keys came after the record began: hashed as the record hashed the block.
        training = relevant["training"]
        relevant["training"] = {**training, "distributed": {"processes": training["distributed"]["processes"]}}
        block = get_method(cell.method).spec.block
        if block is not None:
            relevant["personalization"] = {block: self.params["personalization"][block]}
        return relevant

    def cell_hash(self, cell: Cell, with_code: bool = True) -> str:
        """Identifies a cell's result: cell, data, parameters and (unless ``with_code`` is
        False: the record's parameters hash, beside which the numerics fingerprint stands
        for the code) the code version."""
        key = {"cell": [cell.dataset, cell.backbone, cell.method, cell.seed],
               "data_version": self.data_version, "params": self.cell_params(cell)}
        return config_hash({**key, "code_version": self.code_version} if with_code else key)


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
    data_version: str, code: str | None = None,
) -> list[Unit]:
    """The units that produce the requested cells: all units of the shared base model
    first (the cheapest), then the methods' own trainings seed by
    seed, so a grid stopped half-way has every method at the first seeds rather than
    every seed of a few. Parameters are checked first, as `kedro run` checks them."""
    code = code_version() if code is None else code
    if params["training"]["distributed"]["nodes"] != 1:
        raise ValueError(f"parameter training.distributed.nodes = {params['training']['distributed']['nodes']}: "
                         "the grid trains every unit on this machine; allowed: 1 (processes may be more)")
    for backbone in backbones:
        check_parameters({**params, "dataset": dataset, "backbone": backbone, "methods": methods})
    ordered = [name for name in method_names() if name in methods]
    shared = [name for name in ordered if get_method(name).spec.cloud_model == "base"]
    own = [name for name in ordered if name not in shared]
    units = []
    for seed in seeds:
        for backbone in backbones:
            if shared:
                cells = [Cell(dataset, backbone, m, seed) for m in shared]
                units.append(_unit(params, dataset, backbone, seed, "base", cells, data_version, code))
    models = {name: get_method(name).model_name for name in own}
    for seed in seeds:
        for model in dict.fromkeys(models.values()):  # variants of one cloud model share its unit
            for backbone in backbones:
                cells = [Cell(dataset, backbone, m, seed) for m in own if models[m] == model]
                units.append(_unit(params, dataset, backbone, seed, model, cells, data_version, code))
    return units


def _quiet(value: Any) -> Any:
    """``value`` with every display-only ``progress`` switched off (workers have no terminal)."""
    if isinstance(value, dict):
        return {k: (False if k in _DISPLAY_ONLY else _quiet(v)) for k, v in value.items()}
    return value


def _unit(params, dataset, backbone, seed, model, cells, data_version, code) -> Unit:
    resolved = _quiet(copy.deepcopy(params))
    resolved["dataset"], resolved["backbone"] = dataset, backbone
    resolved["methods"] = [cell.method for cell in cells]
    resolved["training"]["seed"] = seed
    return Unit(dataset, backbone, seed, model, cells, resolved, data_version, code)
