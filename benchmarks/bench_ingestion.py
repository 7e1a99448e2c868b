"""Ingestion speed by format and id type, and the README's example of what a first run prints.

The same 1,000,209 generated events (ml-1m's shape: 6,040 users, 3,706 items) are written
in each layout a declaration can describe: the ml-1m '::' file with integer ids (the
MovieLens path), the Amazon "ratings only" CSV with string ids, Amazon Reviews 2023 JSON
lines, a clickstream CSV with ISO 8601 times, and parquet. Each is ingested as the
`ingestion` pipeline does (read and check every value, item index, data report), in
process; the MovieLens and string-id CSV files also through `kedro run --pipelines=ingestion`
in a scratch project copy (Kedro and MLflow start-up included). Writes the `ingestion`
section of docs/benchmarks.md, each figure beside the previous run's, and README's
`own_data_report` block.

    python benchmarks/bench_ingestion.py        # or: make benchmark-ingestion
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import REPO_ROOT, machine, previous_figures, project_copy, timed_kedro_run, today, write_section
from duet_pipeline.data.declarations import DatasetDeclaration, declaration_of
from duet_pipeline.data.events import read_events
from duet_pipeline.data.report import data_report
from duet_pipeline.experiments.grid import code_version
from duet_pipeline.features.samples import build_item_index
from duet_pipeline.data.synthetic import generate_ratings
from duet_pipeline.project import load_parameters

SECTION = "ingestion"
README = REPO_ROOT / "README.md"
ML1M_SHAPE = dict(num_users=6_040, num_items=3_706, num_rows=1_000_209)
DATASETS = load_parameters()["datasets"]


def with_string_ids(ratings: pd.DataFrame) -> pd.DataFrame:
    return ratings.assign(user=[f"A{u:013d}" for u in ratings["user_id"]],
                          item=[f"B{i:09d}" for i in ratings["item_id"]])


def write_layouts(ratings: pd.DataFrame, folder: Path) -> dict[str, tuple[Path, DatasetDeclaration]]:
    """The events in every layout: name -> (file, its declaration)."""
    log = with_string_ids(ratings)
    files = {}
    movielens = folder / "ratings.dat"
    movielens.write_text(ratings[["user_id", "item_id", "rating", "timestamp"]].astype({"rating": int})
                         .to_csv(sep="\t", header=False, index=False).replace("\t", "::"))
    files["ml-1m layout ('::', integer ids)"] = (movielens, declaration_of("ml-1m", DATASETS))
    amazon = folder / "ratings_Books.csv"
    log[["user", "item", "rating", "timestamp"]].astype({"rating": int}).to_csv(amazon, header=False, index=False)
    files["Amazon ratings CSV (string ids)"] = (amazon, declaration_of("amazon-ratings", DATASETS))
    reviews = folder / "Books.jsonl"
    with open(reviews, "w") as file:
        for user, item, rating, seconds in zip(log["user"], log["item"], log["rating"], log["timestamp"]):
            file.write(json.dumps({"rating": float(rating), "title": "t", "text": "Liked it.", "asin": item,
                                   "parent_asin": item, "user_id": user, "timestamp": int(seconds) * 1000,
                                   "verified_purchase": True}) + "\n")
    files["Amazon Reviews 2023 JSONL (string ids, ms)"] = (reviews, declaration_of("amazon-reviews-2023", DATASETS))
    clickstream = folder / "clicks.csv"
    pd.DataFrame({"event_time": pd.to_datetime(log["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "visitor_id": log["user"], "product_id": log["item"]}).to_csv(clickstream, index=False)
    files["clickstream CSV (string ids, ISO 8601)"] = (clickstream, declaration_of("clickstream", DATASETS))
    parquet = folder / "part-0.parquet"
    ratings.to_parquet(parquet, index=False)
    files["parquet (integer ids)"] = (parquet, declaration_of("synthetic-1m", DATASETS))
    return files


def ingestion_seconds(path: Path, declaration: DatasetDeclaration) -> tuple[float, int]:
    """What the ingestion node computes (read and check, item index, report), best of two."""
    times = []
    for _ in range(2):
        started = time.perf_counter()
        events = read_events(path, declaration)
        build_item_index(events.interactions)
        data_report(events, 3, 99)
        times.append(time.perf_counter() - started)
    return min(times), len(events.interactions)


def kedro_ingestion(scratch: Path, name: str, path: Path) -> float:
    """`kedro run --pipelines=ingestion` of ``path`` declared as dataset ``name``."""
    project = project_copy(scratch / f"project-{name}")
    raw = project / "data" / "01_raw" / DATASETS[name]["path"]
    raw.parent.mkdir(parents=True, exist_ok=True)
    if raw.suffix:  # a declared file
        raw.symlink_to(path)
    else:  # a declared folder of parts
        raw.mkdir()
        (raw / path.name).symlink_to(path)
    return timed_kedro_run(project, ["run", "--pipelines=ingestion", f"--params=dataset={name}"]).wall_seconds


def readme_example(folder: Path) -> str:
    """What the first run on a small clickstream prints about its data (the README's example)."""
    rng = np.random.default_rng(1)
    log = with_string_ids(generate_ratings(num_users=300, num_items=900, num_rows=9_000, seed=2))
    frame = pd.DataFrame({"event_time": pd.to_datetime(log["timestamp"], unit="s", utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"), "visitor_id": log["user"], "product_id": log["item"]})
    short = pd.DataFrame({"event_time": "2001-05-01T10:00:00Z", "visitor_id": [f"V{n}" for n in range(12)],
                          "product_id": frame["product_id"].iloc[:12].to_numpy()})
    frame = pd.concat([frame, frame.iloc[rng.choice(len(frame), 37, replace=False)], short], ignore_index=True)
    path = folder / "clicks-2024-03.csv"
    frame.to_csv(path, index=False)
    events = read_events(path, declaration_of("clickstream", DATASETS))
    report = data_report(events, 3, 99)
    return (f"```text\n{report.text('clickstream')}\n```\n\nGenerated by `make benchmark-ingestion` on {today()}, "
            f"code {code_version()}, from a generated 300-visitor clickstream with 37 double-logged clicks and 12 "
            "one-click visitors.\n")


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="duet-bench-ingestion-"))
    files = write_layouts(generate_ratings(**ML1M_SHAPE, seed=0), scratch)
    previous = previous_figures(SECTION)
    measured = {}
    for label, (path, declaration) in files.items():
        seconds, kept = ingestion_seconds(path, declaration)
        assert kept == ML1M_SHAPE["num_rows"], (label, kept)
        measured[f"{label}: ingestion in process (s)"] = f"{seconds:.1f}"
        print(label, measured[f"{label}: ingestion in process (s)"], flush=True)
    for label, name in (("ml-1m layout ('::', integer ids)", "ml-1m"), ("Amazon ratings CSV (string ids)",
                                                                       "amazon-ratings")):
        measured[f"{label}: `kedro run --pipelines=ingestion` (s)"] = f"{kedro_ingestion(scratch, name, files[label][0]):.1f}"
        print(label, "kedro run", measured[f"{label}: `kedro run --pipelines=ingestion` (s)"], flush=True)
    rows = [f"| {measure} | {'< 30' if 'string ids' in measure and 'kedro' in measure else ''} | {value} | "
            f"{previous.get(measure, '-')} |" for measure, value in measured.items()]
    write_section(SECTION, f"""## Ingestion: 1,000,209 events in each declared layout

Command: `python benchmarks/bench_ingestion.py` (or `make benchmark-ingestion`).
Machine: {machine()}. Date: {today()}. Code: {code_version()}.

| measure | target | this run | previous run |
|---|---|---:|---:|
{chr(10).join(rows)}

The same generated events (ml-1m's shape) in every layout. "In process" is what the
ingestion node computes: read and check every value, the item index and the data report
(best of two); the `kedro run` rows add Kedro and MLflow start-up and writing the versioned
interactions, item index and report.
""")
    write_section("own_data_report", readme_example(scratch), doc=README)


if __name__ == "__main__":
    main()
