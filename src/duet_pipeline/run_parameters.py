"""Every parameter of a run checked at once, before any data stage runs.

``check_parameters`` parses each block with the model of the code that reads it and
returns the run's :class:`Selection` (which methods, on which backbone), from which the
pipelines are built. The project hook calls it when Kedro creates the context; the
grid calls it on its resolved parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duet_pipeline.data.declarations import DatasetDeclaration, RawDataParams, declaration_key, declaration_of
from duet_pipeline.data.synthetic import SyntheticParams, synthetic_shape
from duet_pipeline.features.samples import FeatureParams
from duet_pipeline.methods import METHODS, Method, get_method, method_names, parameter_blocks
from duet_pipeline.models.backbones import BACKBONES, build_backbone
from duet_pipeline.models.recommender import ModelParams
from duet_pipeline.parameters import Block, ParameterError, one_of, parse_block
from duet_pipeline.replay.evaluate import ReplayParams
from duet_pipeline.serving.config import ServingParams
from duet_pipeline.training.loop import DistributedParams, TrainingConfig

TOP_LEVEL = ("dataset", "datasets", "raw_data", "synthetic", "features", "backbone", "model", "backbones", "training", "methods",
             "personalization", "serving", "replay")


@dataclass(frozen=True)
class Selection:
    """What a run trains, personalises and compares."""

    methods: tuple[Method, ...]
    options: dict[str, Block | None]  # method name -> its parsed block
    backbone: str
    serving: ServingParams
    engine: str  # features.engine: which node builds the samples
    split: str  # features.split: leave_one_out, or replay (PROTOCOL section 10)
    replay_policies: tuple[str, ...]  # replay.policies: the learned one adds its training and export
    dataset: str  # a declared dataset's name (conf/base/datasets.yml), or synthetic-<N>
    declared_as: str  # the key of its declaration under `datasets` (synthetic-<N> for every N)
    generated: bool  # the ingestion generates it first (synthetic-<N>)
    streaming: bool  # training.streaming: the base model reads train_samples@files
    distributed: DistributedParams  # training.distributed: whether this node writes, and runs one node at a time

    @property
    def replayed(self) -> tuple[Method, ...]:
        """The selected methods the replay evaluates: those whose cloud sends a message."""
        return tuple(m for m in self.methods if m.on_device == "receives")

    @property
    def needs_base_model(self) -> bool:
        return any(m.needs_base_model(self.options[m.name]) for m in self.methods)


def check_parameters(params: dict[str, Any]) -> Selection:
    """Parse every block strictly; the first problem raises a one-line ParameterError."""
    unknown = sorted(set(params) - set(TOP_LEVEL))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid top-level parameters: {list(TOP_LEVEL)}")
    missing = [name for name in TOP_LEVEL if name not in params]
    if missing:
        raise ParameterError(f"missing parameter(s) {missing} (see conf/base/parameters_*.yml)")
    declaration = check_dataset(params["dataset"], params["datasets"])
    RawDataParams.from_params(params["raw_data"])
    SyntheticParams.from_params(params["synthetic"])
    features = FeatureParams.from_params(params["features"])
    dim = parse_block(ModelParams, params["model"], "model").dim
    check_backbones(params["backbones"], dim)
    one_of("backbone", params["backbone"], sorted(BACKBONES))
    training = TrainingConfig.from_params(params["training"])
    methods = check_methods(params["methods"])
    options = check_personalization(params["personalization"])
    serving = ServingParams.from_params(params["serving"])
    replay = ReplayParams.from_params(params["replay"])
    return Selection(tuple(methods), {m.name: options.get(m.spec.block) for m in METHODS.values()},
                     params["backbone"], serving, features.engine, features.split, tuple(replay.policies),
                     params["dataset"],
                     declaration_key(params["dataset"], params["datasets"]), declaration.generated is not None,
                     training.streaming, training.distributed)


def check_dataset(dataset: Any, datasets: Any) -> DatasetDeclaration:
    """Every declaration well formed, and ``dataset`` declared (synthetic-<N>: N from 10k up)."""
    declaration = declaration_of(dataset, datasets)
    if declaration.generated == "synthetic":
        try:
            synthetic_shape(dataset)
        except ValueError as error:
            raise ParameterError(f"parameter dataset = {dataset!r}: {error}") from None
    return declaration


def check_backbones(backbones: Any, dim: int) -> None:
    """One block per registered backbone, each complete and buildable at ``dim``."""
    if not isinstance(backbones, dict):
        raise ParameterError(f"parameter backbones = {backbones!r}: must map each of {sorted(BACKBONES)} to its options")
    unknown = sorted(set(backbones) - set(BACKBONES))
    if unknown:
        raise ParameterError(f"unknown backbone block(s) backbones.{unknown}; registered backbones: {sorted(BACKBONES)}")
    for name in BACKBONES:
        if name not in backbones:
            raise ParameterError(f"missing parameter block backbones.{name} (conf/base/parameters_backbones.yml)")
        try:
            build_backbone(name, dim, 2, backbones[name])
        except ParameterError:
            raise
        except ValueError as error:  # a constraint between options, e.g. sasrec heads vs dim
            raise ParameterError(f"parameter backbones.{name} = {backbones[name]!r}: {error}") from None


def check_methods(methods: Any) -> list[Method]:
    """A list of registered names; a string holds them separated by spaces, for
    `kedro run --params="methods=base duet+swa"` (the CLI splits lists at commas)."""
    if isinstance(methods, str):
        methods = methods.split()
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ParameterError(f"parameter methods = {methods!r}: must be a non-empty list of {method_names()}")
    for name in methods:
        if name not in METHODS:
            raise ParameterError(f"parameter methods: unknown method {name!r}; valid choices: {method_names()}")
    if len(set(methods)) != len(methods):
        raise ParameterError(f"parameter methods = {methods!r}: a method is listed twice")
    return [get_method(name) for name in methods]


def check_personalization(personalization: Any) -> dict[str, Block]:
    """Exactly one block per method module that declares one, each parsed by its module."""
    blocks = parameter_blocks()
    if not isinstance(personalization, dict):
        raise ParameterError(f"parameter personalization = {personalization!r}: must map {sorted(blocks)} to their options")
    unknown = sorted(set(personalization) - set(blocks))
    if unknown:
        raise ParameterError(f"unknown parameter block(s) personalization.{unknown}; "
                             f"method blocks: {sorted(blocks)}")
    return {block: next(m for m in METHODS.values() if m.spec.block == block).parse_options(personalization.get(block))
            for block in blocks}


# Pipelines that score the leave-one-out test clicks (one per user), and the one that
# replays the replay split's streams; the data and training stages and serving (which
# publishes the latest model of the split) serve either split.
LEAVE_ONE_OUT_PIPELINES = ("__default__", "duet", "duet_all", "personalization", "evaluation", "dccl")
REPLAY_PIPELINES = ("replay",)


def check_split(selection: Selection, pipeline_names: list[str]) -> None:
    """The run's pipelines evaluate the split it builds (and the replay has a method to replay)."""
    for name in pipeline_names:
        if selection.split == "replay" and name in LEAVE_ONE_OUT_PIPELINES:
            raise ParameterError(f"parameter features.split = 'replay': pipeline {name!r} evaluates leave-one-out "
                                 "test clicks; replay streams are evaluated by `kedro run --pipelines=replay`")
        if selection.split != "replay" and name in REPLAY_PIPELINES:
            raise ParameterError(f"parameter features.split = {selection.split!r}: pipeline {name!r} needs "
                                 "features.split=replay")
    if any(name in REPLAY_PIPELINES for name in pipeline_names) and not selection.replayed:
        raise ParameterError(f"parameter methods = {[m.name for m in selection.methods]}: the replay needs a method "
                             "whose cloud sends a message (duet+swa, lhuc, ...); the others score the same at every step")
