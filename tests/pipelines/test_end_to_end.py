"""Tiny end-to-end ``kedro run``s of the real project configuration."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.cli.utils import _split_params

from conftest import REPO_ROOT, add_toy_method, empty_mlflow_store, kedro, latest_version
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.parameters import ParameterError
from duet_pipeline.project import load_parameters
from duet_pipeline.run_parameters import check_parameters

TINY = "dataset=ml-100k,training.max_epochs=2,training.progress=false,personalization.finetune.progress=false"


def test_data_pipelines_write_versioned_samples(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=ingestion,feature_engineering", f"--params={TINY}")
    model_input = tiny_ml100k / "data" / "05_model_input" / "ml-100k"
    test = pd.read_parquet(latest_version(model_input / "test_samples.parquet"))
    assert set(test.columns) == {"user_id", "history", "target_item", "negatives"}
    assert len(test) == 40 and test["user_id"].is_unique  # one stored positive per user
    assert {len(h) for h in test["history"]} == {10}
    assert {len(n) for n in test["negatives"]} == {99}
    # A second run adds a version instead of overwriting the first.
    kedro(tiny_ml100k, "run", "--pipelines=ingestion", f"--params={TINY}")
    interactions = tiny_ml100k / "data" / "02_intermediate" / "ml-100k" / "interactions.parquet"
    assert len(list(interactions.iterdir())) == 2


def test_duet_run_compares_methods_and_logs_to_mlflow(tiny_ml100k: Path) -> None:
    result = kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},backbone=gru4rec")
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "gru4rec"
    table = pd.read_csv(latest_version(reporting / "metrics_table.csv"))
    assert table["method"].tolist() == ["base", "finetune", "duet+swa"]
    for column in ("auc", "uauc", "ndcg@10", "hr@10"):
        assert table[column].between(0.0, 1.0).all()
    assert (table["users"] == 40).all()
    history = pd.read_csv(latest_version(reporting / "base_training_history.csv"))
    assert history["epoch"].tolist() == [1, 2]
    devices = pd.read_csv(latest_version(reporting / "device_table.csv")).set_index("method")
    assert devices.loc["duet+swa", "payload_bytes"] == 2 * (32 * 32 + 32) * 4
    assert devices.loc["duet+swa", "generation_ms_p50_single"] <= devices.loc["duet+swa", "generation_ms_p99_single"]
    assert devices.loc["finetune", "seconds_per_device"] > 0
    comparison = latest_version(reporting / "comparison.md").read_text()
    assert "| finetune |" in comparison and "| duet+swa |" in comparison
    # The run ends by printing the comparison (quality, not the cost tables) and its file.
    printed = result.stdout.split("# Methods compared: ml-100k / gru4rec", 1)[1]
    assert "| duet+swa |" in printed and "Per-device cost" not in printed and "comparison.md" in printed
    assert "warning" not in (result.stdout + result.stderr).lower()
    assert latest_version(reporting / "auc_by_method.png").read_bytes()[:4] == b"\x89PNG"

    with sqlite3.connect(tiny_ml100k / "mlflow.db") as db:
        runs = db.execute("select run_uuid from runs").fetchall()
        assert len(runs) == 1
        assert db.execute("select name from runs").fetchone()[0] == "ml-100k/gru4rec/base,finetune,duet+swa"
        kind = db.execute("select value from experiment_tags where key = 'mlflow.experimentKind'").fetchone()
        assert kind == ("custom_model_development",)  # the MLflow UI opens on the runs
        metrics = {row[0]: row[1] for row in db.execute("select key, count(*) from metrics group by key")}
        params = dict(db.execute("select key, value from params").fetchall())
        artifacts = Path(db.execute("select artifact_uri from runs").fetchone()[0].removeprefix("file://"))
    assert metrics["base.val_auc"] == 2  # one value per epoch: a metric history
    assert metrics["duet_swa.val_auc"] == 2 and metrics["base.train_loss"] == 2
    # MLflow forbids '@' and '+' in names: ndcg@10 -> ndcg_at_10, duet+swa -> duet_swa.
    for key in ("test.base.auc", "test.finetune.auc", "test.duet_swa.auc", "test.base.ndcg_at_10",
                "personalization.duet_swa.payload_bytes", "personalization.finetune.seconds_per_device"):
        assert key in metrics, key
    assert params["backbone"] == "gru4rec" and params["training.learning_rate"] == "0.001"
    assert params["personalization.duet.swa_generators"] == "4"
    assert params["backbones.din.attention_units"] == "[32, 16]"
    for artifact in ("models/base_model.pkl", "models/duet_swa_model.pkl", "reporting/metrics_table.csv",
                     "reporting/comparison.md", "reporting/auc_by_method.png"):
        assert (artifacts / artifact).exists(), artifact


def written_files(project: Path) -> list[Path]:
    return [p for p in (project / "data").rglob("*") if p.is_file() and "01_raw" not in p.parts]


BAD_PARAMETERS = [
    ("backbone=transformer", "parameter backbone = 'transformer'", "['din', 'gru4rec', 'sasrec']"),
    ("features.max_seq_len=0", "parameter features.max_seq_len = 0", "greater than or equal to 1"),
    ("training.learning_rate=-0.001", "parameter training.learning_rate = -0.001", "greater than 0"),
    ("personalization.duet.swa_generators=0", "parameter personalization.duet.swa_generators = 0",
     "greater than or equal to 2"),
    ("methods=base transformer", "parameter methods: unknown method 'transformer'", "'finetune', 'duet'"),
    ("training.learnin_rate=0.1", "unknown parameter training.learnin_rate (value 0.1)", "'learning_rate'"),
    ("training.selection_metric=precision", "parameter training.selection_metric = 'precision'", "'ndcg@10'"),
    ("backbones.sasrec.num_heads=5", "parameter backbones.sasrec", "must divide the embedding dim 32"),
    ("dataset=ml-20m", "parameter dataset = 'ml-20m': not declared", "'amazon-ratings'"),
    ("datasets.clickstream.time_unit=hours", "parameter datasets.clickstream.time_unit = 'hours'", "'iso8601'"),
    ("datasets.ml-100k.colums=x", "unknown parameter datasets.ml-100k.colums", "'columns'"),
]


@pytest.mark.parametrize("override,named,allowed", BAD_PARAMETERS)
def test_a_bad_parameter_is_refused_naming_it_and_what_is_allowed(override: str, named: str, allowed: str) -> None:
    """The check a `kedro run` makes first (hooks.ParameterCheckHook), on the parameters as
    `--params` resolves them (Kedro's own parsing of the option)."""
    runtime = _split_params(None, None, f"{TINY},{override}")
    with pytest.raises(ParameterError) as refused:
        check_parameters(load_parameters(REPO_ROOT, runtime_params=runtime))
    message = " ".join(str(refused.value).split())
    assert named in message and allowed in message and "\n" not in str(refused.value).strip()


# End to end once for a misspelt key and once for a value out of range: the mechanism (the
# check before any stage, one line, nothing written) is the same for every parameter.
@pytest.mark.parametrize("override,named,allowed", [BAD_PARAMETERS[5], BAD_PARAMETERS[2]])
def test_a_bad_parameter_fails_at_the_start_naming_it_and_writes_nothing(
    tiny_ml100k: Path, override: str, named: str, allowed: str
) -> None:
    result = kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},{override}", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "ParameterError: " + named in output and allowed in output, output[-2000:]
    assert "Traceback" not in output and len((result.stdout + result.stderr).strip().splitlines()) <= 4  # one error line
    assert "Running node" not in output  # nothing ran, not even ingestion
    assert written_files(tiny_ml100k) == []
    # Checked before kedro-mlflow sets up its store: the project copy's empty store is untouched.
    assert (tiny_ml100k / "mlflow.db").read_bytes() == empty_mlflow_store()


def test_methods_parameter_selects_what_runs(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=duet base")
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "din"
    table = pd.read_csv(latest_version(reporting / "metrics_table.csv"))
    assert table["method"].tolist() == ["duet", "base"]
    models = {p.name for p in (tiny_ml100k / "data" / "06_models" / "ml-100k" / "din").iterdir()}
    assert models == {"base_model.pkl", "duet_model.pkl"}
    assert not (tiny_ml100k / "data" / "07_model_output" / "ml-100k" / "din" / "finetune_predictions.parquet").exists()


def test_a_toy_method_added_as_one_module_and_one_yaml_block_runs_end_to_end(tiny_ml100k: Path) -> None:
    add_toy_method(tiny_ml100k)
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},methods=base popularity")
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "din"
    table = pd.read_csv(latest_version(reporting / "metrics_table.csv")).set_index("method")
    assert list(table.index) == ["base", "popularity"]
    # Popularity scores do not depend on the device: compare with a direct computation.
    model_input = tiny_ml100k / "data" / "05_model_input" / "ml-100k"
    train = pd.read_parquet(latest_version(model_input / "train_samples.parquet"))
    test = pd.read_parquet(latest_version(model_input / "test_samples.parquet"))
    counts = train["target_item"].value_counts()  # a stored train row is a positive
    predictions = pd.read_parquet(latest_version(
        tiny_ml100k / "data" / "07_model_output" / "ml-100k" / "din" / "popularity_predictions.parquet"))
    # The scored rows: each test positive, then its 99 negatives.
    candidates = np.column_stack([test["target_item"].to_numpy(np.int64), np.stack(test["negatives"].to_numpy())])
    want = np.log(pd.Series(candidates.reshape(-1)).map(counts).fillna(0).to_numpy(np.float64) + 1.0)
    assert np.abs(predictions["score"].to_numpy() - want).max() < 1e-5
    bad = kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},personalization.popularity.smoothing=-1",
                check=False)
    assert bad.returncode != 0 and "personalization.popularity.smoothing = -1" in bad.stdout + bad.stderr


def test_duet_all_trains_every_backbone_in_its_namespace(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet_all", f"--params={TINY},training.max_epochs=1")
    for backbone in BACKBONES:
        model_dir = tiny_ml100k / "data" / "06_models" / "ml-100k" / backbone / "base_model.pkl"
        assert len(list(model_dir.iterdir())) == 1
        table = pd.read_csv(latest_version(tiny_ml100k / "data" / "08_reporting" / "ml-100k" / backbone / "metrics_table.csv"))
        assert table["method"].tolist() == ["base", "finetune", "duet+swa"]


def test_bad_raw_file_fails_naming_file_and_line_and_saves_nothing(tiny_ml100k: Path) -> None:
    ratings = tiny_ml100k / "data" / "01_raw" / "ml-100k" / "u.data"
    kedro(tiny_ml100k, "run", "--pipelines=ingestion", f"--params={TINY}")
    interactions = tiny_ml100k / "data" / "02_intermediate" / "ml-100k" / "interactions.parquet"
    good_version = latest_version(interactions)
    lines = ratings.read_text().splitlines()
    lines[6] = "7\t12\tfive\t881250949"
    ratings.write_text("\n".join(lines) + "\n")
    result = kedro(tiny_ml100k, "run", "--pipelines=ingestion", f"--params={TINY}", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "u.data" in output and "line 7" in output
    assert latest_version(interactions) == good_version


FAMILY_PAYLOAD_FLOATS = {"lhuc": 2 * 32, "ppnet": 32, "poso": 2 * 4, "pepnet": 32, "m2m": 2 * (32 * 32 + 32),
                         "can": 0, "apg": 2 * 8 * 8}


def test_the_dynamic_weight_family_runs_end_to_end(tiny_ml100k: Path) -> None:
    methods = " ".join(["base", *FAMILY_PAYLOAD_FLOATS])
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},training.max_epochs=1,backbone=sasrec,"
                                                  f"methods={methods}")
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "sasrec"
    table = pd.read_csv(latest_version(reporting / "metrics_table.csv"))
    assert table["method"].tolist() == methods.split()
    assert table["auc"].between(0.0, 1.0).all() and (table["users"] == 40).all()
    devices = pd.read_csv(latest_version(reporting / "device_table.csv")).set_index("method")
    for method, floats in FAMILY_PAYLOAD_FLOATS.items():
        assert devices.loc[method, "payload_bytes"] == 4 * floats, method
        assert devices.loc[method, "device_ms_per_candidate"] > 0
    assert devices.loc["can", "device_extra_bytes"] > devices.loc["apg", "device_extra_bytes"] > 0
    activity = pd.read_csv(latest_version(reporting / "activity_table.csv"))
    assert activity["method"].unique().tolist() == methods.split()
    assert activity.groupby("method")["users"].sum().eq(40).all()
    assert activity["activity"].str.startswith("Q1").any()


def test_the_dccl_pipeline_runs_each_stage_of_each_round_and_logs_the_rounds(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=dccl", f"--params={TINY},training.max_epochs=1,personalization.dccl.rounds=2,"
                                                  "personalization.dccl.distill_max_epochs=1,"
                                                  "personalization.dccl.device.progress=false")
    models = tiny_ml100k / "data" / "06_models" / "ml-100k" / "din"
    for r in range(3):
        assert latest_version(models / f"dccl_round_{r}_cloud_model.pkl").exists()
        assert latest_version(models / f"dccl_round_{r}_device_model.pkl").exists()
    for r in (1, 2):
        assert latest_version(models / f"dccl_round_{r}_distilled_model.pkl").exists()
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "din"
    rounds = pd.read_csv(latest_version(reporting / "dccl_rounds_table.csv"))
    assert rounds["round"].tolist() == [0, 1, 2]
    for column in ("test_cloud_auc", "test_devices_auc", "val_cloud_auc", "val_devices_ndcg@10"):
        assert rounds[column].between(0.0, 1.0).all(), column
    assert (rounds["devices"] == 40).all()
    with sqlite3.connect(tiny_ml100k / "mlflow.db") as db:
        steps = db.execute("select step from metrics where key = 'dccl_rounds.test_cloud_auc' order by step").fetchall()
        distilled = db.execute("select count(*) from metrics where key = 'dccl_round_2.val_auc'").fetchone()[0]
    assert [s for (s,) in steps] == [0, 1, 2]  # one value per round: a history
    assert distilled == 1


def test_dccl_methods_share_one_training_in_the_duet_pipeline(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},training.max_epochs=1,methods=base metapatch "
                                                  "momodistill,personalization.dccl.rounds=1,"
                                                  "personalization.dccl.distill_max_epochs=1,"
                                                  "personalization.dccl.device.progress=false")
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "din"
    table = pd.read_csv(latest_version(reporting / "metrics_table.csv"))
    assert table["method"].tolist() == ["base", "metapatch", "momodistill"]
    devices = pd.read_csv(latest_version(reporting / "device_table.csv")).set_index("method")
    assert devices.loc["metapatch", "upload_bytes_per_round"] == 8 * 4
    assert devices.loc["metapatch", "device_extra_bytes"] > devices.loc["momodistill", "device_extra_bytes"] == 0
    # Round 0's cloud is the base model itself.
    base_auc = table.set_index("method").loc["base", "auc"]
    assert devices.loc["momodistill", "round0_auc"] == pytest.approx(base_auc, abs=1e-9)
    assert len(list((tiny_ml100k / "data" / "06_models" / "ml-100k" / "din" / "dccl_model.pkl").iterdir())) == 1
    # MoMoDistill's devices run the last round's cloud model; MetaPatch's, that model patched by
    # each device's own meta-patch (an input of its exported scorer).
    for method in ("momodistill", "metapatch"):
        kedro(tiny_ml100k, "run", "--pipelines=serving", f"--params=dataset=ml-100k,serving.method={method}")
        report = json.loads(latest_version(reporting / f"{method}_device_report.json").read_text())
        assert report["max_abs_difference"] < 1e-5
    assert not (reporting / "metapatch_cloud_half_report.json").exists()  # nothing is sent per request


def test_the_serving_pipeline_registers_the_cloud_half_and_exports_the_device_model(tiny_ml100k: Path) -> None:
    kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},training.max_epochs=1,methods=base duet+swa lhuc")
    kedro(tiny_ml100k, "run", "--pipelines=serving", "--params=dataset=ml-100k")
    reporting = tiny_ml100k / "data" / "08_reporting" / "ml-100k" / "din"
    device = json.loads(latest_version(reporting / "duet_swa_device_report.json").read_text())
    assert device["max_abs_difference"] < 1e-5 and device["devices"] == 40
    onnx = latest_version(tiny_ml100k / "data" / "06_models" / "ml-100k" / "din" / "duet_swa_device.onnx")
    assert onnx.stat().st_size == device["onnx_bytes"]
    published = json.loads(latest_version(reporting / "duet_swa_cloud_half_report.json").read_text())
    assert published["registered_model"] == "duet_swa-cloud-half" and published["version"] == "1"
    client = mlflow.MlflowClient(f"sqlite:///{tiny_ml100k / 'mlflow.db'}")
    version = client.get_model_version("duet_swa-cloud-half", "1")
    assert version.tags["dataset"] == "ml-100k" and version.tags["method"] == "duet+swa"
    # Any method: LHUC's scales are served the same way; base sends nothing: a device model only.
    kedro(tiny_ml100k, "run", "--pipelines=serving", "--params=dataset=ml-100k,serving.method=lhuc")
    assert client.get_model_version("lhuc-cloud-half", "1").tags["method"] == "lhuc"
    assert json.loads(latest_version(reporting / "lhuc_device_report.json").read_text())["max_abs_difference"] < 1e-5
    kedro(tiny_ml100k, "run", "--pipelines=serving", "--params=dataset=ml-100k,serving.method=base")
    assert json.loads(latest_version(reporting / "base_device_report.json").read_text())["max_abs_difference"] < 1e-5
    assert not (reporting / "base_cloud_half_report.json").exists()
