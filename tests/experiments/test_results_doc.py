"""docs/RESULTS.md holds no number typed by hand: each dataset's section is exactly what
the report code makes of the committed record (docs/results/<dataset>*.csv)."""
from __future__ import annotations

import re

import pytest

from duet_pipeline.experiments.report import STALE_HEADING, dataset_report, read_section

from conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
RESULTS = DOCS / "RESULTS.md"
RECORDED = sorted(p.name.removesuffix("_history.csv") for p in (DOCS / "results").glob("*_history.csv"))


def test_every_record_has_its_section() -> None:
    assert RECORDED, "no committed record under docs/results"
    for dataset in RECORDED:
        assert read_section(RESULTS, dataset) is not None, f"RESULTS.md has no generated section for {dataset}"


@pytest.mark.parametrize("dataset", RECORDED)
def test_the_section_is_what_the_report_makes_of_the_record(dataset: str) -> None:
    committed = read_section(RESULTS, dataset)
    made = dataset_report(DOCS / "results", DOCS, dataset, show_stale=STALE_HEADING in committed)
    assert committed.strip() == made.markdown.strip(), (
        f"docs/RESULTS.md's {dataset} section differs from its record: run "
        f"`python benchmarks/grid.py --dataset {dataset} --report-only`")
    for link in re.findall(r"\]\((results/[^)]+\.png)\)", committed):
        assert (DOCS / link).is_file(), f"{link} is linked from RESULTS.md but not committed"


REPLAYED = sorted(p.stem.removeprefix("replay-") for p in (DOCS / "results").glob("replay-*.csv"))


@pytest.mark.parametrize("dataset", REPLAYED)
def test_the_value_of_real_time_is_what_the_report_makes_of_its_rows(dataset: str) -> None:
    import pandas as pd

    from duet_pipeline.project import load_parameters
    from duet_pipeline.replay.report import real_time_markdown

    committed = read_section(RESULTS, f"replay-{dataset}")
    assert committed is not None, f"RESULTS.md has no replay-{dataset} section"
    runs = pd.read_csv(DOCS / "results" / f"replay-{dataset}.csv")
    stay = load_parameters()["synthetic"]["stay_probability"] if dataset.startswith("synthetic-") else None
    made = real_time_markdown(runs, dataset, "din", stay)  # benchmarks/replay.py replays DIN
    assert committed.strip() == made.strip(), (
        f"docs/RESULTS.md's replay-{dataset} section differs from its rows: run "
        f"`python benchmarks/replay.py --dataset {dataset} --report-only`")
    assert (DOCS / "results" / f"replay-{dataset}.png").is_file()
