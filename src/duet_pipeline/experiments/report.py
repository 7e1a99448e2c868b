"""A dataset's section of docs/RESULTS.md, made from its committed record alone.

Everything the section says -- tables, verdicts, sentences, provenance -- is a function
of the files under docs/results/ (the record, its curves, the cells set aside as stale,
the grid invocations), so tests/experiments/test_results_doc.py can check that the
committed section is what this code makes of the committed record.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd

from duet_pipeline.evaluation.statistics import ALPHA, BETTER, WORSE

from . import plots
from .record import Record
from .tables import (BASE, PAPER_DUET, activity_table, comparisons, cost_table, in_order, leader, losing_cells,
                     quality_table, rounds_table, training_minutes)

STALE_HEADING = "### Cells of other data, parameters or numerics (not in the tables above)"


@dataclass
class Report:
    markdown: str
    figures: dict[Path, Callable[[], None]] = field(default_factory=dict)  # path -> draws it

    def draw(self) -> list[Path]:
        for draw in self.figures.values():
            draw()
        return list(self.figures)


def grid_command(dataset: str) -> str:
    return f"`make benchmark DATASET={dataset}` (= `python benchmarks/grid.py --dataset {dataset}`)"


def dataset_report(folder: Path, doc_folder: Path, dataset: str, show_stale: bool = False) -> Report:
    """The section for ``dataset`` from ``folder`` (docs/results); figure paths are made
    relative to ``doc_folder`` (docs/) in the markdown."""
    record = Record(folder, dataset)
    cells = in_order(record.cells) if len(record.cells) else record.cells
    parts = [f"## {dataset}", "", *provenance(record, folder, dataset)]
    report = Report("")
    if cells.empty:
        parts += ["", "No current cells yet."]
    else:
        parts += ["", "### Verdicts", "", *verdict_sentences(cells), "",
                  f"Intervals: Student's t over the per-seed differences (same backbone and seed), {1 - ALPHA:.0%}."
                  f" Verdicts: Holm's correction over the methods of a backbone, family-wise error {ALPHA:g};"
                  " \"not separable\" means the seeds do not tell the difference from noise, not that there is none.",
                  "", "### Test quality (mean ± std over seeds; 1 positive + 99 negatives per user)", "",
                  _markdown(quality_table(cells, dataset)),
                  "", "### Cost (medians over seeds)", "", _markdown(cost_table(cells)),
                  "", "### Cost against quality", ""]
        for backbone in cells["backbone"].unique():
            path = folder / f"{dataset}_{backbone}_frontier.png"
            report.figures[path] = partial(plots.frontier, cells, backbone, dataset, path)
            parts += [f"![{backbone}: AUC gain against cost]({_link(path, doc_folder)})", ""]
        parts += ["Filled, named and joined: the Pareto-optimal methods (no other method costs no more and gains"
                  " no less). A method missing from a panel did not measure that cost."]
        rounds = rounds_table(cells)
        if not rounds.empty:
            parts += ["", "### By round of the device-cloud loop (test; round 0 = before any distillation)", "",
                      _markdown(rounds)]
        parts += ["", "### By user activity (test AUC; each method minus base, paired by seed)", ""]
        for backbone in cells["backbone"].unique():
            parts += [f"{backbone}:", "", _markdown(activity_table(cells, backbone)), ""]
        parts += ["### Where a method does not beat base", "", *losing_section(cells, record.history, folder,
                                                                                 doc_folder, dataset, report)]
    if show_stale:
        parts += ["", *stale_section(folder, dataset)]
    report.markdown = "\n".join(parts).rstrip() + "\n"
    return report


def provenance(record: Record, folder: Path, dataset: str) -> list[str]:
    """Where the numbers come from: command, code, machines, dates, seeds, compute, wall time."""
    cells = record.cells
    lines = [f"- command: {grid_command(dataset)}"]
    if cells.empty:
        return lines
    seeds = cells.groupby(["backbone", "method"])["seed"].nunique()
    lines += [
        f"- cells: {len(cells)}: {cells['method'].nunique()} methods × {cells['backbone'].nunique()} backbones,"
        f" {_span(seeds)} seeds each; per-seed values in [results/{dataset}.csv](results/{dataset}.csv)",
        "- code: " + "; ".join(f"`{v}` ({n} cells)" for v, n in cells["code_version"].value_counts().items())
        + ". A grid run keeps a cell in the record only while today's code reproduces the numerics fingerprint"
        " recorded with it (experiments/fingerprint.py), and sets the others aside.",
        "- machine: " + "; ".join(f"{m}, {t} thread(s) per training ({n} cells)" for (m, t), n in
                                  cells.groupby(["machine", "threads"]).size().items()),
        f"- computed: {cells['finished'].min()} to {cells['finished'].max()}",
        f"- compute: {training_minutes(cells):.0f} min of training and personalisation, summed over trainings",
        *wall_time(folder, dataset),
    ]
    missing = seeds[seeds < seeds.max()]
    if len(missing):
        lines.append("- fewer seeds: " + ", ".join(f"{b}/{m} ({n})" for (b, m), n in missing.items()))
    return lines


def wall_time(folder: Path, dataset: str) -> list[str]:
    """The grid invocations' wall time: the latest that finished every cell, the one before."""
    path = folder / f"{dataset}_invocations.csv"
    if not path.exists():
        return []
    runs = pd.read_csv(path)
    complete = runs[runs["complete"].astype(bool)]
    if complete.empty:
        total = runs["wall_seconds"].sum() / 60
        return [f"- grid wall time so far: {total:.0f} min over {len(runs)} invocation(s), not yet complete"]
    latest = complete.iloc[-1]
    line = (f"- grid wall time: {latest['wall_seconds'] / 60:.0f} min for {latest['cells_run']:.0f} cells "
            f"({latest['jobs']:.0f} trainings at once; ended {latest['ended']})")
    if len(complete) > 1:
        before = complete.iloc[-2]
        line += f"; previous: {before['wall_seconds'] / 60:.0f} min for {before['cells_run']:.0f} cells ({before['ended']})"
    return [line]


def verdict_sentences(cells: pd.DataFrame) -> list[str]:
    """Per backbone: the paper's claim (DUET+SWA against base), the leader, and which
    methods the intervals separate from base and from DUET+SWA -- nothing more."""
    against_base, against_duet = comparisons(cells, BASE), comparisons(cells, PAPER_DUET)
    lines = []
    for backbone in cells["backbone"].unique():
        parts = []
        claim = against_base[(against_base["backbone"] == backbone) & (against_base["method"] == PAPER_DUET)]
        if len(claim):
            row = claim.iloc[0]
            parts.append(f"{PAPER_DUET} − {BASE}: {row['difference'].interval()} AUC, {_phrase(row, BASE)}.")
        name, auc, seeds = leader(cells, backbone)
        duet_row = against_duet[(against_duet["backbone"] == backbone) & (against_duet["method"] == name)]
        parts.append(f"Highest mean AUC over {seeds} seeds: {name} ({auc:.4f})" + (
            f"; against {PAPER_DUET}: {duet_row.iloc[0]['difference'].interval()}, {_phrase(duet_row.iloc[0], PAPER_DUET)}."
            if len(duet_row) else "."))
        for table, reference in ((against_base, BASE), (against_duet, PAPER_DUET)):
            mine = table[(table["backbone"] == backbone) & (table["method"] != BASE)]
            for outcome in (BETTER, WORSE):
                chosen = mine[mine["verdict"] == outcome]
                if len(chosen):
                    parts.append(f"{outcome.capitalize()} than {reference}: "
                                 + ", ".join(f"{r.method} ({r.difference.mean:+.4f})" for r in chosen.itertuples()) + ".")
            if not (mine["verdict"] == BETTER).any() and len(mine):
                parts.append(f"No method is separably better than {reference}.")
        lines.append(f"- **{backbone}**: " + " ".join(parts))
    return lines


def _phrase(row: pd.Series, reference: str) -> str:
    d, verdict = row["difference"], row["verdict"]
    if verdict == BETTER:
        return f"above {reference} (Holm-adjusted p = {row['adjusted_p']:.2g}, n={d.seeds})"
    if verdict == WORSE:
        return f"below {reference} (Holm-adjusted p = {row['adjusted_p']:.2g}, n={d.seeds})"
    return verdict


def losing_section(cells: pd.DataFrame, history: pd.DataFrame, folder: Path, doc_folder: Path, dataset: str,
                   report: Report) -> list[str]:
    losing = losing_cells(cells)
    if not losing:
        return [f"Every method's mean test AUC is at or above {BASE}'s."]
    parts = ["Cells whose mean test AUC is below base's: " + ", ".join(f"{b}/{m}" for b, m in losing)
             + ". Whether the difference is separable from noise: the verdicts above.", ""]
    for backbone in dict.fromkeys(b for b, _ in losing):
        path = folder / f"{dataset}_{backbone}_learning_curves.png"
        methods = [m for b, m in losing if b == backbone]
        report.figures[path] = partial(plots.learning_curves, history, backbone, methods, path)
        parts += [f"![{backbone} learning curves]({_link(path, doc_folder)})", ""]
    return parts


def stale_section(folder: Path, dataset: str) -> list[str]:
    """Cells set aside by a grid because the data, parameters or numerics changed since
    (shown only with --show-stale, never mixed into the tables)."""
    path = folder / f"{dataset}_stale.csv"
    stale = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if stale.empty:
        return [STALE_HEADING, "", "None."]
    table = in_order(stale).groupby(["backbone", "method", "stale", "code_version"], sort=False).agg(
        seeds=("seed", "nunique"), auc=("auc", "mean")).reset_index()
    table["auc"] = table["auc"].map("{:.4f}".format)
    return [STALE_HEADING, "", _markdown(table)]


def _span(counts: pd.Series) -> str:
    return f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)


def write_section(doc: Path, name: str, markdown: str, header: str = "# Results\n") -> None:
    """Replace (or append) the section between ``name``'s markers in ``doc``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else header
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def read_section(doc: Path, name: str) -> str | None:
    """The text between ``name``'s markers in ``doc`` (None where absent)."""
    found = re.search(re.escape(f"<!-- BEGIN {name} -->") + r"\n(.*?)\n" + re.escape(f"<!-- END {name} -->"),
                      doc.read_text(), re.S)
    return None if found is None else found.group(1)


def _link(path: Path, doc_folder: Path) -> str:
    """A markdown link from the document's folder to `path`, wherever either lies."""
    return Path(os.path.relpath(path, doc_folder)).as_posix()
