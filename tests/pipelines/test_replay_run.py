"""`kedro run --pipelines=replay` end to end on a tiny log, and the runs it refuses."""
from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from conftest import kedro, latest_version
from duet_pipeline.replay.policies import BUDGETED

TINY = "dataset=ml-100k,training.max_epochs=1,training.progress=false,replay.learned.epochs=20"


def test_replay_run_trains_on_the_replay_split_and_reports_every_policy(tiny_ml100k: Path) -> None:
    result = kedro(tiny_ml100k, "run", "--pipelines=replay", f"--params={TINY},methods=duet+swa lhuc")
    folder = tiny_ml100k / "data"
    # The replay split's samples and models live apart from leave-one-out's.
    assert not list((folder / "05_model_input" / "ml-100k").glob("*.parquet"))
    streams = pd.read_parquet(latest_version(folder / "05_model_input" / "ml-100k" / "replay" / "test_samples.parquet"))
    assert streams.groupby("user_id").size().eq(10).all()  # replay_length clicks per device
    assert latest_version(folder / "06_models" / "ml-100k" / "replay" / "din" / "duet_swa_policy.onnx").stat().st_size > 0
    table = pd.read_csv(latest_version(folder / "08_reporting" / "ml-100k" / "replay" / "din" / "replay_table.csv"))
    budgets = 6
    assert len(table) == 2 * (2 + budgets * len(BUDGETED))
    for _, rows in table.groupby("method"):
        always = rows.loc[rows["policy"] == "always"].iloc[0]
        never = rows.loc[rows["policy"] == "never"].iloc[0]
        assert (always["request_rate"], never["request_rate"]) == (1.0, 0.0)
        budgeted = rows[rows["policy"].isin(BUDGETED)]
        assert (budgeted["request_rate"] <= budgeted["budget"] + 1e-9).all()
        # Budget 1 is always, budget 0 never, whatever the policy.
        np.testing.assert_allclose(budgeted.loc[budgeted["budget"] == 1.0, "auc"], always["auc"])
        np.testing.assert_allclose(budgeted.loc[budgeted["budget"] == 0.0, "auc"], never["auc"])
    assert "## Replay: ml-100k / din" in result.stdout  # the headline, printed
    run = mlflow.MlflowClient(f"sqlite:///{tiny_ml100k / 'mlflow.db'}").search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(f"sqlite:///{tiny_ml100k / 'mlflow.db'}").search_experiments()])[0]
    assert "replay.lhuc.always.auc" in run.data.metrics


def test_a_run_on_the_wrong_split_is_refused_before_anything_is_written(tiny_ml100k: Path) -> None:
    refused = kedro(tiny_ml100k, "run", "--pipelines=duet", f"--params={TINY},features.split=replay", check=False)
    assert refused.returncode == 1
    assert "parameter features.split = 'replay': pipeline 'duet' evaluates leave-one-out" in refused.stderr
    no_message = kedro(tiny_ml100k, "run", "--pipelines=replay", f"--params={TINY},methods=base finetune", check=False)
    assert "the replay needs a method whose cloud sends a message" in no_message.stderr
    bad_budget = kedro(tiny_ml100k, "run", "--pipelines=replay", f"--params={TINY},replay.budgets=[2]", check=False)
    assert "replay.budgets" in bad_budget.stderr and "[0, 1]" in bad_budget.stderr
    # A split set in a parameters file alone: the catalog's paths would not follow it.
    (tiny_ml100k / "conf" / "local" / "parameters.yml").write_text("features:\n  split: replay\n")
    local = kedro(tiny_ml100k, "run", "--pipelines=ingestion,feature_engineering", f"--params={TINY}", check=False)
    assert "parameter features.split = 'replay' is not the split the catalog's paths use" in local.stderr
    assert not [p for p in (tiny_ml100k / "data").rglob("*") if p.is_file() and "01_raw" not in p.parts]
