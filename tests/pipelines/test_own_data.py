"""Bring your own interactions: the shipped worked examples (conf/base/datasets.yml), each a
small generated file in its own format, run end to end through `kedro run --pipelines=duet`,
and a private log declared in conf/local as the README says."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import kedro, latest_version
from pipelines.test_spark_engine import sorted_samples
from duet_pipeline.data.synthetic import generate_ratings
from duet_pipeline.features.samples import FeatureParams, make_samples
from duet_pipeline.project import load_parameters
from duet_pipeline.spark_session import java_executable

RUN = ("training.max_epochs=1,training.progress=false,personalization.finetune.progress=false,"
       "methods=base duet+swa")


def clicks(seed: int = 4) -> pd.DataFrame:
    """A small log: 40 users, 300 items, every user with 20+ events; string ids made from the
    integers, times in epoch seconds."""
    ratings = generate_ratings(num_users=40, num_items=300, num_rows=1_200, seed=seed)
    return ratings.assign(user=[f"A{u:013d}" for u in ratings["user_id"]],
                          item=[f"B{i:09d}" for i in ratings["item_id"]])


def write_amazon_ratings(folder: Path, log: pd.DataFrame) -> None:
    """The Amazon "ratings only" CSV: user,item,rating,timestamp; no header; epoch seconds."""
    folder.mkdir(parents=True)
    log[["user", "item", "rating", "timestamp"]].assign(rating=log["rating"].round().astype(int)).to_csv(
        folder / "ratings_Books.csv", header=False, index=False)


def write_amazon_reviews_2023(folder: Path, log: pd.DataFrame) -> None:
    """Amazon Reviews 2023 JSON lines: the review's fields, timestamp in milliseconds."""
    folder.mkdir(parents=True)
    with open(folder / "Books.jsonl", "w") as file:
        for row in log.itertuples():
            file.write(json.dumps({"rating": float(round(row.rating)), "title": "Great", "text": "Liked it, a lot.",
                                   "images": [], "asin": row.item + "X", "parent_asin": row.item,
                                   "user_id": row.user, "timestamp": int(row.timestamp) * 1000,
                                   "helpful_vote": 0, "verified_purchase": True}) + "\n")


def write_clickstream(folder: Path, log: pd.DataFrame) -> None:
    """A clickstream export: header, string ids, ISO 8601 times with a zone, no rating; the
    first ten clicks logged twice."""
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"event_time": pd.to_datetime(log["timestamp"], unit="s", utc=True)
                          .dt.tz_convert("Europe/Berlin").map(lambda t: t.isoformat()),
                          "visitor_id": log["user"], "product_id": log["item"], "page": "/p"})
    pd.concat([frame, frame.head(10)]).to_csv(folder / "2024-03.csv", index=False)


EXAMPLES = {"amazon-ratings": write_amazon_ratings, "amazon-reviews-2023": write_amazon_reviews_2023,
            "clickstream": write_clickstream}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_worked_example_runs_every_stage_of_the_duet_pipeline(project_copy: Path, name: str) -> None:
    project, log = project_copy, clicks()
    EXAMPLES[name](project / "data" / "01_raw" / name, log)
    result = kedro(project, "run", "--pipelines=duet", f"--params=dataset={name},{RUN}")
    output = result.stdout + result.stderr
    assert f"Data report for {name}" in output and "events read 1,2" in output
    interactions = pd.read_parquet(latest_version(project / "data" / "02_intermediate" / name / "interactions.parquet"))
    item_index = pd.read_parquet(latest_version(project / "data" / "03_primary" / name / "item_index.parquet"))
    # String ids as they came: the item index maps the raw ids, sorted, to 1..N.
    assert item_index["raw_item_id"].tolist() == sorted(set(log["item"]))
    assert item_index["item_index"].tolist() == list(range(1, len(item_index) + 1))
    assert sorted(set(interactions["raw_user_id"])) == sorted(set(log["user"]))
    # Every event accounted for: the clickstream's ten double-logged clicks are dropped and counted.
    report = pd.read_csv(latest_version(project / "data" / "08_reporting" / name / "data_report.csv"))
    figures = dict(zip(report.loc[report["scope"] == "all", "figure"], report.loc[report["scope"] == "all", "value"]))
    duplicates = 10 if name == "clickstream" else 0
    assert float(figures["events read"]) == len(log) + duplicates
    assert float(figures["dropped: duplicate"]) == duplicates and float(figures["events kept"]) == len(log)
    # The same instants, whatever the declared unit: epoch milliseconds.
    np.testing.assert_array_equal(np.sort(interactions["timestamp"].to_numpy()), np.sort(log["timestamp"] * 1000))
    table = pd.read_csv(latest_version(project / "data" / "08_reporting" / name / "din" / "metrics_table.csv"))
    assert table["method"].tolist() == ["base", "duet+swa"] and table["auc"].between(0, 1).all()


def test_a_private_log_is_one_block_in_conf_local(project_copy: Path) -> None:
    """The README's "Run it on your own data": one YAML block, one command; the shipped
    declarations stay declared beside it; a bad value in the log names file, line and column."""
    project, log = project_copy, clicks(seed=6)
    parts = project / "data" / "01_raw" / "shop"
    parts.mkdir(parents=True)
    for number, part in enumerate([log.iloc[: len(log) // 2], log.iloc[len(log) // 2:]]):
        with gzip.open(parts / f"part-{number}.csv.gz", "wt") as file:  # not a part of this format: ignored
            file.write("garbage")
        part[["user", "item", "timestamp"]].to_csv(parts / f"part-{number}.tsv", sep="\t", index=False)
    (project / "conf" / "local" / "datasets.yml").write_text(
        "datasets:\n"
        "  shop:\n"
        "    path: shop\n"
        "    format: tsv\n"
        "    columns: {user: user, item: item, time: timestamp}\n"
        "    ids: string\n"
        "    time_unit: s\n")
    kedro(project, "run", "--pipelines=ingestion,feature_engineering", f"--params=dataset=shop,{RUN}")
    assert {"shop", "ml-100k", "amazon-ratings"} <= set(load_parameters(project)["datasets"])  # merged, not replaced
    interactions = project / "data" / "02_intermediate" / "shop" / "interactions.parquet"
    good = latest_version(interactions)
    assert len(pd.read_parquet(good)) == len(log)
    lines = (parts / "part-1.tsv").read_text().splitlines()
    lines[3] = "\t".join(["", *lines[3].split("\t")[1:]])
    (parts / "part-1.tsv").write_text("\n".join(lines) + "\n")
    result = kedro(project, "run", "--pipelines=ingestion", f"--params=dataset=shop,{RUN}", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "part-1.tsv: line 4: column 'user' (user id): empty user id" in output
    assert latest_version(interactions) == good


@pytest.mark.skipif(java_executable() is None, reason="the spark engine needs Java 17 or 21")
def test_the_spark_engine_reads_a_string_keyed_log_as_the_pandas_engine(project_copy: Path) -> None:
    """The Spark engine reads the interactions the one ingestion checked (string item ids,
    raw_user_id beside user_id) and makes the pandas engine's samples, row for row."""
    project = project_copy
    write_clickstream(project / "data" / "01_raw" / "clickstream", clicks(seed=8))
    kedro(project, "run", "--pipelines=ingestion,feature_engineering", "--params=dataset=clickstream,features.engine=spark")
    interactions = pd.read_parquet(latest_version(project / "data" / "02_intermediate" / "clickstream" /
                                                  "interactions.parquet"))
    item_index = pd.read_parquet(latest_version(project / "data" / "03_primary" / "clickstream" / "item_index.parquet"))
    expected = make_samples(interactions, item_index, **FeatureParams.from_params(load_parameters()["features"])
                            .sample_options())
    for split, samples in expected.items():
        written = pd.read_parquet(latest_version(project / "data" / "05_model_input" / "clickstream" /
                                                 f"{split}_samples.parquet"), dtype_backend="pyarrow")
        np.testing.assert_array_equal(sorted_samples(written), sorted_samples(samples), err_msg=split)


def test_a_generated_dataset_is_read_as_its_declared_parquet_folder(project_copy: Path) -> None:
    """synthetic-<N> is a declaration like any other: generated, then read as a parquet folder,
    with the same checks and report."""
    kedro(project_copy, "run", "--pipelines=ingestion,feature_engineering", "--params=dataset=synthetic-10k")
    report = pd.read_csv(latest_version(project_copy / "data" / "08_reporting" / "synthetic-10k" / "data_report.csv"))
    parts = report.loc[report["figure"] == "events read"]
    assert len(parts) == 2 and parts["scope"].iloc[0].endswith(".parquet")  # one shard, then the total
    assert float(parts["value"].iloc[-1]) >= 10_000
    assert latest_version(project_copy / "data" / "05_model_input" / "synthetic-10k" / "test_samples.parquet").is_file()
