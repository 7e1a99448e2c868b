"""The record's tables: quality with paired comparisons and verdicts, cost, rounds of a
device-cloud loop, user activity. Each reads record rows (experiments/record.py) only.

Methods, their order and published AUCs come from the method registry; metrics and
their directions from the metric declarations; statistics from evaluation/statistics.py.
"""
from __future__ import annotations

import re

import pandas as pd

from duet_pipeline.evaluation.metrics import headline_metrics
from duet_pipeline.evaluation.statistics import holm, paired_difference, verdict
from duet_pipeline.methods import baseline, get_method, method_names
from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.training.tracking import mlflow_metric_name

from .record import CELL
from .runner import ACTIVITY_METRICS

BASE = baseline().name
# The paper's DUET (generator + SWA), the second reference every method is held against.
PAPER_DUET = "duet+swa"
# A method's quality after each round of a device-cloud loop (DCCL): personalization_round<r>_<metric>.
ROUND_COLUMN = re.compile(r"^personalization_round(\d+)_(.+)$")


def in_order(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows by backbone (as registered), method (as registered), seed."""
    rank = {**{b: i for i, b in enumerate(BACKBONES)}, **{m: i for i, m in enumerate(method_names())}}
    return cells.sort_values(CELL, key=lambda c: c if c.name == "seed" else c.map(rank), ignore_index=True)


def mean_std(values: pd.Series, digits: int = 4) -> str:
    values = values.dropna()
    if values.empty:
        return ""
    if len(values) < 2:
        return f"{values.mean():.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def comparisons(cells: pd.DataFrame, reference: str, metric: str = "auc") -> pd.DataFrame:
    """Every method of each backbone against ``reference`` on ``metric``, paired by seed:
    the difference with its interval, Holm-adjusted p over that backbone's methods, and
    the verdict. Backbones without the reference are left out."""
    rows = []
    for backbone, part in cells.groupby("backbone", sort=False):
        wide = part.pivot_table(index="seed", columns="method", values=metric)
        if reference not in wide:
            continue
        found = []
        for method in (m for m in method_names() if m in wide and m != reference):
            paired = wide[[method, reference]].dropna()
            found.append((method, paired_difference(paired[method].to_numpy(), paired[reference].to_numpy())))
        adjusted = holm([d.p_value for _, d in found])
        rows += [{"backbone": backbone, "method": method, "difference": d, "adjusted_p": p,
                  "verdict": verdict(d, p, metric)} for (method, d), p in zip(found, adjusted)]
    return pd.DataFrame(rows, columns=["backbone", "method", "difference", "adjusted_p", "verdict"])


def quality_table(cells: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per backbone and method: seeds, headline metrics (mean ± std), AUC against base and
    against the paper's DUET with intervals and Holm verdicts, published references."""
    against = {ref: comparisons(cells, ref).set_index(["backbone", "method"]) for ref in (BASE, PAPER_DUET)}
    rows = []
    for (backbone, method), group in in_order(cells).groupby(["backbone", "method"], sort=False):
        row = {"backbone": backbone, "method": method, "seeds": len(group),
               **{name: mean_std(group[name]) for name in headline_metrics()}}
        for reference, table in against.items():
            found = table.loc[(backbone, method)] if (backbone, method) in table.index else None
            row[f"AUC − {reference} [95% CI]"] = "" if found is None else found["difference"].interval()
            row[f"vs {reference}"] = "" if found is None else found["verdict"]
        for source in ("paper", "reproduction"):
            value = get_method(method).reference_auc(source, dataset, backbone)
            row[f"{source} AUC"] = "" if value is None else f"{value:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def trained_model(method: str) -> str:
    """The cloud model a method's cells use: the shared base model, the model its variant
    shares (DCCL's 'dccl') or its own."""
    chosen = get_method(method)
    return chosen.model_name if chosen.model_name != chosen.key else method


# Cost columns of the record -> how the cost table shows their median over seeds.
COSTS = {
    "personalization_payload_bytes": ("cloud → device bytes/request", "{:,.0f}", 1),
    "personalization_device_extra_bytes": ("device bytes beyond base", "{:,.0f}", 1),
    "personalization_device_ms_per_candidate": ("device ms/candidate", "{:.4f}", 1),
    "personalization_generation_ms_p50_single": ("cloud ms/request p50", "{:.3f}", 1),
    "personalization_download_bytes_per_round": ("down bytes/device/round", "{:,.0f}", 1),
    "personalization_upload_bytes_per_round": ("up bytes/device/round", "{:,.0f}", 1),
}


def cost_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per backbone and method, medians over seeds (a timing disturbed by other work on
    the machine moves a mean): what crosses the network, what the device holds and
    spends, and what the cloud training costs."""
    rows = []
    for (backbone, method), group in in_order(cells).groupby(["backbone", "method"], sort=False):
        trains = get_method(method).on_device == "trains"
        per_device = group.get("personalization_seconds_per_device", pd.Series(dtype=float)).median()
        row = {"backbone": backbone, "method": method, "trained model": trained_model(method),
               "on the device": get_method(method).on_device}
        for column, (name, form, scale) in COSTS.items():
            value = group.get(column, pd.Series(dtype=float)).median()
            row[name] = "" if pd.isna(value) else form.format(value * scale)
        row["device training ms/device"] = f"{per_device * 1000:.3f}" if trains and pd.notna(per_device) else ""
        row["cloud s/epoch"] = f"{group['seconds_per_epoch'].median():.1f}"
        row["train rows/s"] = f"{group['train_rows_per_second'].median():,.0f}"
        row["epochs (best)"] = f"{group['epochs'].mean():.1f} ({group['best_epoch'].mean():.1f})"
        rows.append(row)
    return pd.DataFrame(rows)


def rounds_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Test quality after each round, for methods that report rounds (mean ± std over seeds)."""
    numbers = sorted({int(m.group(1)) for m in map(ROUND_COLUMN.match, cells.columns) if m})
    rows = []
    for (backbone, method), group in in_order(cells).groupby(["backbone", "method"], sort=False):
        for number in numbers:
            values = {name: group.get(f"personalization_round{number}_{mlflow_metric_name(name)}")
                      for name in headline_metrics()}
            values = {name: v.dropna() for name, v in values.items() if v is not None and v.notna().any()}
            if values:
                rows.append({"backbone": backbone, "method": method, "round": number,
                             "seeds": max(len(v) for v in values.values()),
                             **{name: mean_std(v) for name, v in values.items()}})
    return pd.DataFrame(rows)


def activity_table(cells: pd.DataFrame, backbone: str, metric: str = "auc") -> pd.DataFrame:
    """Per quartile of user activity (train positives): users, base's ``metric`` (mean over
    seeds) and every other method's difference to base, paired by seed."""
    if metric not in ACTIVITY_METRICS:
        raise ValueError(f"activity metric {metric!r} is not recorded; recorded: {ACTIVITY_METRICS}")
    part = in_order(cells[cells["backbone"] == backbone])
    quartiles = sorted({m.group(1) for m in map(re.compile(r"^activity_(q\d+)_users$").match, part.columns) if m})
    rows = []
    for quartile in quartiles:
        column = f"activity_{quartile}_{metric}"
        wide = part.pivot_table(index="seed", columns="method", values=column)
        if BASE not in wide:
            continue
        positives = part[f"activity_{quartile}_positives"].dropna()
        row = {"users (train positives)": f"{quartile.upper()}: {part[f'activity_{quartile}_users'].median():.0f}"
                                          f" ({positives.iloc[0] if len(positives) else '?'})",
               f"{BASE} {metric}": f"{wide[BASE].mean():.4f}"}
        for method in (m for m in part["method"].unique() if m != BASE and m in wide):
            paired = (wide[method] - wide[BASE]).dropna()
            row[f"{method} − {BASE}"] = f"{paired.mean():+.4f}" if len(paired) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def training_minutes(cells: pd.DataFrame) -> float:
    """Minutes of work behind the cells, each training counted once (base and finetune,
    metapatch and momodistill share one)."""
    if cells.empty:
        return 0.0
    trainings = cells.assign(model=cells["method"].map(trained_model))
    return float(trainings.drop_duplicates(["backbone", "seed", "model"])["wall_seconds"].sum() / 60)


def leader(cells: pd.DataFrame, backbone: str, metric: str = "auc") -> tuple[str, float, int]:
    """The method with the highest seed-mean ``metric`` on ``backbone``, its mean and seed
    count, among the methods with the most seeds there: a mean over fewer seeds (a record
    still growing) is not compared with one over more."""
    part = cells[cells["backbone"] == backbone]
    seeds = part.groupby("method")["seed"].nunique()
    most = part[part["method"].isin(seeds[seeds == seeds.max()].index)]
    means = most.groupby("method")[metric].mean()
    return str(means.idxmax()), float(means.max()), int(seeds.max())


def losing_cells(cells: pd.DataFrame) -> list[tuple[str, str]]:
    """(backbone, method) whose seed-mean test AUC is below base's on that backbone."""
    means = cells.groupby(["backbone", "method"])["auc"].mean()
    return [(b, m) for (b, m), auc in means.items()
            if m != BASE and (b, BASE) in means and auc < means[(b, BASE)]]

