"""The pipeline registry that ``kedro viz`` reads, and a real ``kedro viz build``."""
from __future__ import annotations

import json
from pathlib import Path

from kedro.framework.project import configure_project, pipelines

from conftest import kedro


def test_registry_composes_duet_from_the_stages() -> None:
    configure_project("duet_pipeline")
    duet = pipelines["duet"]
    names = {node.name for node in duet.nodes}
    assert {
        "ingest_ratings", "build_samples", "train_base_model", "train_duet_model",
        "finetune_devices", "generate_device_heads", "predict_base", "report_metrics", "report_comparison",
    } <= names
    assert pipelines["__default__"].nodes == duet.nodes
    assert {"train_samples", "validation_samples", "test_samples"} <= duet.all_outputs()
    namespaced = {node.name for node in pipelines["duet_all"].nodes}
    for backbone in ("din", "gru4rec", "sasrec"):
        assert f"{backbone}.train_base_model" in namespaced


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
