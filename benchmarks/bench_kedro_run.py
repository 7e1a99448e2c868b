"""Wall time of `kedro run --pipelines=duet` on the embedded default (ml-latest-small).

    python benchmarks/bench_kedro_run.py

Runs in a scratch copy of the project (fresh data layers and mlflow.db), so the timing
includes Kedro and MLflow start-up, the data pipelines and every model stage, as a user's
first `make run` after installation. Writes the `kedro_run` section of docs/RESULTS.md.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from common import REPO_ROOT, machine, project_copy, timed_kedro_run, today

from duet_pipeline.experiments.results import write_section

COMMAND = ["run", "--pipelines=duet"]


def main() -> None:
    project = project_copy(Path(tempfile.mkdtemp(prefix="duet-kedro-run-")) / "project")
    shipped = REPO_ROOT / "data" / "01_raw" / "ml-latest-small"
    target = project / "data" / "01_raw" / "ml-latest-small"
    target.mkdir(parents=True, exist_ok=True)
    for path in shipped.glob("*.csv"):
        (target / path.name).write_bytes(path.read_bytes())
    print(f"running `kedro {' '.join(COMMAND)}` in {project}", flush=True)
    run = timed_kedro_run(project, COMMAND, env={"DUET_DATA_DIR": ""})
    markdown = "\n".join([
        "## `kedro run --pipelines=duet` on the embedded default", "",
        "| dataset | backbone | wall time | peak RSS |", "|---|---|---:|---:|",
        f"| ml-latest-small (shipped) | din (default) | {run.wall_seconds / 60:.1f} min ({run.wall_seconds:.0f} s) "
        f"| {run.peak_rss_mib / 1024:.2f} GiB |", "",
        f"Command: `python benchmarks/bench_kedro_run.py` (times `kedro {' '.join(COMMAND)}` in a scratch copy "
        f"of the project: data pipelines, base and DUET+SWA training, fine-tuning and DUET personalisation, "
        f"evaluation, MLflow logging). Machine: {machine()}. Date: {today()}. Nothing else ran on the machine.",
    ])
    write_section(REPO_ROOT / "docs" / "RESULTS.md", "kedro_run", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
