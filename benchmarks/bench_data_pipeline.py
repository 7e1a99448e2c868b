"""Speed and peak memory of `ingestion` + `feature_engineering`.

Cases: the real ml-100k (from $DUET_DATA_DIR or ../shared/data) and a generated file of
ml-1m's shape (1,000,209 ratings, 6,040 users, 3,706 items in the ml-1m '::' layout),
since the real ml-1m ratings are not available offline. Each case is one `kedro run` in
a scratch copy of the project, timed as a whole (Kedro and MLflow start-up included);
the library work alone (read + samples, no catalog) is timed in-process too.

    python benchmarks/bench_data_pipeline.py        # or: make benchmark-data
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import data_dir, machine, project_copy, timed_kedro_run, today, write_section

from duet_pipeline.data.events import read_interactions
from duet_pipeline.features.samples import build_item_index
from duet_pipeline.data.synthetic import generate_ratings, write_ratings
from duet_pipeline.features.samples import FeatureParams, make_samples
from duet_pipeline.project import load_parameters

ML1M_SHAPE = dict(num_users=6_040, num_items=3_706, num_rows=1_000_209)
FEATURES = FeatureParams.from_params(load_parameters()["features"]).sample_options()


def library_seconds(ratings_path: Path, dataset: str) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    interactions = read_interactions(ratings_path, dataset, load_parameters()["datasets"])
    samples = make_samples(interactions, build_item_index(interactions), **FEATURES)
    return time.perf_counter() - started, {split: len(frame) for split, frame in samples.items()}


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="duet-bench-data-"))
    raw = scratch / "raw"
    cases = []
    ml100k = data_dir() / "ml-100k" / "u.data"
    if ml100k.exists():
        (raw / "ml-100k").mkdir(parents=True)
        (raw / "ml-100k" / "u.data").symlink_to(ml100k)
        cases.append(("ml-100k", "ml-100k (real)", raw / "ml-100k" / "u.data"))
    else:
        print(f"skipping ml-100k: {ml100k} not found")
    generated = write_ratings(generate_ratings(**ML1M_SHAPE, seed=0), raw / "ml-1m", "ml-1m")
    cases.append(("ml-1m", "ml-1m shape (generated)", generated))

    rows = []
    for dataset, label, path in cases:
        seconds, sizes = library_seconds(path, dataset)
        project = project_copy(scratch / f"project-{dataset}")
        run = timed_kedro_run(
            project,
            ["run", "--pipelines=ingestion,feature_engineering", f"--params=dataset={dataset}"],
            env={"DUET_DATA_DIR": str(raw)},
        )
        rows.append(
            f"| {label} | {sizes['train']:,} / {sizes['validation']:,} / {sizes['test']:,} "
            f"| {seconds:.1f} | {run.wall_seconds:.1f} | {run.peak_rss_mib / 1024:.2f} |"
        )
        print(rows[-1], flush=True)

    write_section(
        "data_pipeline",
        f"""## Data pipelines: `ingestion` + `feature_engineering`

Command: `python benchmarks/bench_data_pipeline.py` (or `make benchmark-data`).
Machine: {machine()}. Date: {today()}.

| input | train / validation / test rows | library only (s) | `kedro run` wall (s) | peak memory (GiB) |
|---|---|---:|---:|---:|
{chr(10).join(rows)}

"library only" is read + validate + windows + split + negatives, in-process. The `kedro run`
column is the whole CLI run in a fresh process, including Kedro/MLflow start-up (about 8 s)
and writing the versioned parquet files; peak memory is that process's maximum resident set.
""",
    )


if __name__ == "__main__":
    main()
