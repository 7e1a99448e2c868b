"""The pipeline registry that ``kedro viz`` reads, and a real ``kedro viz build``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.framework.project import configure_project, pipelines

from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.methods import get_method, method_names
from duet_pipeline.pipelines.stages import model_stages
from duet_pipeline.project import load_parameters
from duet_pipeline.run_parameters import check_parameters

from conftest import REPO_ROOT, kedro


def selection(**runtime):
    return check_parameters(load_parameters(REPO_ROOT, runtime))


def test_registry_composes_duet_from_the_stages() -> None:
    configure_project("duet_pipeline")
    duet = pipelines["duet"]
    names = {node.name for node in duet.nodes}
    assert {
        "ingest_ratings", "build_samples", "train_base_model", "train_duet_swa_model",
        "personalize_base", "personalize_finetune", "personalize_duet_swa", "report_metrics", "report_comparison",
    } <= names
    assert pipelines["__default__"].nodes == duet.nodes
    assert {"train_samples", "validation_samples", "test_samples"} <= duet.all_outputs()
    namespaced = {node.name for node in pipelines["duet_all"].nodes}
    for backbone in BACKBONES:
        assert f"{backbone}.train_base_model" in namespaced
    # No parameter stubs: a namespace's backbone is fixed in its nodes.
    assert not any(name.startswith("params:din") for name in pipelines["duet_all"].inputs())


def test_one_branch_per_selected_method() -> None:
    every = method_names()
    stages = model_stages(selection(methods=every))
    names = {node.name for node in stages.nodes}
    assert "train_base_model" in names  # base and finetune read the one shared base model
    for name in every:
        method = get_method(name)
        assert f"personalize_{method.key}" in names
        if method.spec.cloud_model == "own":
            assert f"train_{method.model_name}_model" in names
    outputs = {node.name: node.outputs for node in stages.nodes}
    assert outputs["personalize_duet_pa_gaussian"] == ["duet_pa_gaussian_predictions", "duet_pa_gaussian_report"]
    report = next(node for node in stages.nodes if node.name == "report_metrics")
    assert report.inputs == [f"{get_method(m).key}_predictions" for m in every]
    only = {node.name for node in model_stages(selection(methods=["base", "duet"])).nodes}
    assert only == {"train_base_model", "train_duet_model", "personalize_base", "personalize_duet",
                    "report_metrics", "report_comparison", "report_activity"}


@pytest.mark.parametrize("warm_start", [False, True])
def test_duet_reads_the_base_model_only_when_it_starts_from_it(warm_start: bool) -> None:
    stages = model_stages(selection(methods=["duet+swa"], personalization={"duet": {"warm_start": warm_start}}))
    train = next(node for node in stages.nodes if node.name == "train_duet_swa_model")
    assert ("base_model" in train.inputs) == warm_start
    assert ("train_base_model" in {node.name for node in stages.nodes}) == warm_start


def test_viz_build_shows_both_data_pipelines_with_their_datasets(project_copy: Path) -> None:
    kedro(project_copy, "viz", "build")
    api = project_copy / "build" / "api"
    for name, datasets in {
        "ingestion": {"interactions", "item_index"},
        "feature_engineering": {"train_samples", "validation_samples", "test_samples"},
    }.items():
        graph = json.loads((api / "pipelines" / name).read_text())
        shown = {node["name"] for node in graph["nodes"] if node["type"] == "data"}
        assert datasets <= shown, f"{name} misses {datasets - shown}"
    # The default pipeline shows one branch per selected method.
    graph = json.loads((api / "pipelines" / "duet").read_text())
    tasks = {node["name"] for node in graph["nodes"] if node["type"] == "task"}
    data = {node["name"] for node in graph["nodes"] if node["type"] == "data"}
    assert {"personalize_base", "personalize_finetune", "personalize_duet_swa", "train_duet_swa_model"} <= tasks
    assert {"base_predictions", "finetune_predictions", "duet_swa_predictions", "duet_swa_model"} <= data
