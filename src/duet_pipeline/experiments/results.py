"""A dataset's grid results: per-seed table, mean +- std summary, timing, and a look at
every cell where a method does not beat the base model. Written to docs/RESULTS.md.

Methods, their order and their published AUCs come from the method registry; metric
names and directions from the metric declarations."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from duet_pipeline.evaluation.metrics import compute_metrics, headline_metrics, metric_names, per_user_auc
from duet_pipeline.evaluation.reporting import activity_groups
from duet_pipeline.methods import baseline, get_method, method_names
from duet_pipeline.training.tracking import mlflow_metric_name

from .grid import Unit
from .runner import GridData
from .tracking import GridTracker

# Headline metric -> its MLflow column in the runs frame.
QUALITY = {name: f"test.{mlflow_metric_name(name)}" for name in headline_metrics()}
# The method every other is compared to.
BASE = baseline().name


def planned_runs(tracker: GridTracker, units: list[Unit], reuse_stale: bool = False) -> pd.DataFrame:
    """The MLflow runs of the planned cells under the current configuration (and code,
    unless ``reuse_stale``)."""
    column = "params_hash" if reuse_stale else "config_hash"
    hashes = {unit.cell_hash(cell, with_code=not reuse_stale) for unit in units for cell in unit.cells}
    runs = tracker.runs(units[0].dataset) if units else pd.DataFrame()
    if runs.empty:
        return runs
    runs = runs[runs[column].isin(hashes)].sort_values("start_time").drop_duplicates(column, keep="last")
    order = {m: i for i, m in enumerate(method_names())}
    return runs.sort_values(["backbone", "method", "seed"], key=lambda c: c.map(order) if c.name == "method" else c)


def mean_std(values: pd.Series) -> str:
    if values.isna().all():
        return ""
    if len(values) < 2:
        return f"{values.mean():.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def quality_table(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    rows = []
    for (backbone, method), group in runs.groupby(["backbone", "method"], sort=False):
        base = runs[(runs["backbone"] == backbone) & (runs["method"] == BASE)]
        gain = group.set_index("seed")["test.auc"] - base.set_index("seed")["test.auc"]
        rows.append({
            "backbone": backbone, "method": method, "seeds": len(group),
            **{name: mean_std(group[column]) for name, column in QUALITY.items()},
            f"AUC - {BASE} (paired)": "" if method == BASE or gain.dropna().empty else f"{gain.mean():+.4f}",
            **{f"{source} AUC": _reference(method, source, dataset, backbone) for source in ("paper", "reproduction")},
        })
    return pd.DataFrame(rows)


def _reference(method: str, source: str, dataset: str, backbone: str) -> str:
    value = get_method(method).reference_auc(source, dataset, backbone)
    return "" if value is None else f"{value:.4f}"


def timing_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Training speed of the model each cell uses, and the method's per-device cost
    (medians over seeds: a timing disturbed by other work on the machine moves a mean)."""
    rows = []
    for (backbone, method), group in runs.groupby(["backbone", "method"], sort=False):
        rows.append({
            "backbone": backbone, "method": method,
            "trained model": _trained_model(method),
            "s/epoch": f"{group['training.seconds_per_epoch'].median():.1f}",
            "train rows/s": f"{group['training.train_rows_per_second'].median():,.0f}",
            "epochs (best)": f"{group['training.epochs'].mean():.1f} ({group['training.best_epoch'].mean():.1f})",
            "personalisation ms/device": _ms(group.get("personalization.seconds_per_device")),
        })
    return pd.DataFrame(rows)


def _trained_model(method: str) -> str:
    """The cloud model a method's cells use: the shared base model, the model its
    variant shares (DCCL's 'dccl') or its own."""
    chosen = get_method(method)
    return chosen.model_name if chosen.model_name != chosen.key else method


def _ms(seconds: pd.Series | None) -> str:
    return "" if seconds is None or seconds.isna().all() else f"{seconds.median() * 1000:.3f}"


def device_cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per backbone, every method with per-device work: its median cost per device over
    seeds and variants (in the cloud, or on the device for methods that train there),
    the payload it sends where it sends one, what a round of a device-cloud loop moves,
    and its cost relative to the cheapest such method."""
    rows = []
    column = "personalization.seconds_per_device"
    if column not in runs.columns:
        return pd.DataFrame()
    for backbone, group in runs.groupby("backbone", sort=False):
        costs = group.dropna(subset=[column]).groupby("method", sort=False)
        if costs.ngroups < 1:
            continue
        medians = costs[column].median()
        cheapest = medians[medians > 0].min()
        for method, part in costs:
            trains = get_method(method).on_device == "trains"
            cost = part[column].median()
            rows.append({
                "backbone": backbone, "method": method, "on the device": get_method(method).on_device,
                "cloud ms/device (batched)": "" if trains else f"{cost * 1000:.4f}",
                "cloud single request p50 ms": _median(part, "generation_ms_p50_single", "{:.3f}"),
                "device training ms/device (batched / alone)": (
                    f"{cost * 1000:.3f} / {_median(part, 'loop_seconds_per_device', '{:.4f}', 1000)}" if trains else ""),
                "per round: down / up bytes per device": " / ".join(
                    value for value in (_median(part, "download_bytes_per_round", "{:,.0f}"),
                                        _median(part, "upload_bytes_per_round", "{:,.0f}")) if value),
                "cloud s/round": _median(part, "cloud_seconds_per_round", "{:.1f}"),
                "payload bytes/device": _median(part, "payload_bytes", "{:,.0f}"),
                "device extra bytes": _median(part, "device_extra_bytes", "{:,.0f}"),
                "device ms/candidate": _median(part, "device_ms_per_candidate", "{:.4f}"),
                "head reads the candidate": {1.0: "yes", 0.0: "no"}.get(
                    part.get("personalization.head_reads_candidate", pd.Series(dtype=float)).median(), ""),
                "train rows/s": f"{part['training.train_rows_per_second'].median():,.0f}",
                "cost / cheapest": f"{cost / cheapest:,.0f}x" if cost > 0 else "-",
            })
    return pd.DataFrame(rows)


def _median(part: pd.DataFrame, key: str, form: str, scale: float = 1.0) -> str:
    """The median over seeds of a personalisation report's ``key`` (times ``scale``),
    formatted; "" where absent."""
    values = part.get(f"personalization.{key}")
    return "" if values is None or values.isna().all() else form.format(values.median() * scale)


def losing_cells(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(backbone, method) whose mean test AUC is below the base model's."""
    means = runs.groupby(["backbone", "method"])["test.auc"].mean()
    return [
        (backbone, method) for (backbone, method), auc in means.items()
        if method != BASE and (backbone, BASE) in means and auc < means[(backbone, BASE)]
    ]


def learning_curves(tracker: GridTracker, runs: pd.DataFrame, backbone: str, methods: list[str], path: Path) -> None:
    """Validation AUC per epoch of the base model and the given methods, every seed."""
    figure, axis = plt.subplots(figsize=(7, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, method in zip(colours, [BASE, *methods]):
        for i, run in enumerate(runs[(runs["backbone"] == backbone) & (runs["method"] == method)].itertuples()):
            history = tracker.training_history(run.run_id)
            axis.plot(history["epoch"], history["val_auc"], color=colour, alpha=0.8, marker=".",
                      label=method if i == 0 else None)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation AUC")
    axis.set_title(f"{backbone}: learning curves (every seed)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def user_groups(data: GridData, bins: int = 4) -> pd.DataFrame:
    """Per test user: number of train positives (activity quartile) and test history length."""
    test = data.test
    first = pd.Series(np.arange(len(test))).groupby(test.user.numpy()).first()
    users = activity_groups(data.train.user[data.train.label > 0].numpy(), first.index.to_numpy(), bins)
    users["history_length"] = (test.history[first.to_numpy()] > 0).sum(dim=1).numpy()
    return users


def breakdown(tracker: GridTracker, runs: pd.DataFrame, users: pd.DataFrame, backbone: str,
              methods: list[str], by: str) -> pd.DataFrame:
    """Test AUC, UAUC and NDCG@10 per user group, per seed, for base and the given methods."""
    rows = []
    for method in [BASE, *methods]:
        for run in runs[(runs["backbone"] == backbone) & (runs["method"] == method)].itertuples():
            predictions = tracker.predictions(run.run_id).merge(users[["user_id", by]], on="user_id")
            for group, part in predictions.groupby(by, sort=True):
                metrics = compute_metrics(part["user_id"].to_numpy(), part["label"].to_numpy(), part["score"].to_numpy())
                rows.append({by: group, "method": method, "seed": run.seed, "users": part["user_id"].nunique(),
                             "auc": metrics["auc"], "uauc": metrics["uauc"], "ndcg@10": metrics["ndcg@10"]})
    return pd.DataFrame(rows)


def paired_user_differences(tracker: GridTracker, runs: pd.DataFrame, cells: list[tuple[str, str]]) -> pd.DataFrame:
    """Per-user AUC of each cell minus the base model's (same backbone and seed): the
    mean over users with a normal 95% interval, and the share of users it helps, so a
    difference can be told from noise. UAUC difference = the mean over users."""
    rows = []
    for backbone, method in cells:
        for seed in sorted(runs[(runs["backbone"] == backbone) & (runs["method"] == method)]["seed"]):
            pair = {m: runs[(runs["backbone"] == backbone) & (runs["method"] == m) & (runs["seed"] == seed)]
                    for m in (BASE, method)}
            if any(p.empty for p in pair.values()):
                continue
            aucs = {}
            for m, run in pair.items():
                predictions = tracker.predictions(run["run_id"].iloc[0])
                aucs[m] = per_user_auc(predictions["user_id"].to_numpy(), predictions["label"].to_numpy(),
                                       predictions["score"].to_numpy())
            diff = (aucs[method] - aucs[BASE]).dropna()
            half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
            rows.append({"backbone": backbone, "method": method, "seed": seed, "users": len(diff),
                         "UAUC - base": f"{diff.mean():+.4f}", "95% interval": f"[{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}]",
                         "users helped / hurt": f"{(diff > 0).mean():.0%} / {(diff < 0).mean():.0%}"})
    return pd.DataFrame(rows)


def relative_to_base(table: pd.DataFrame, by: str, metric: str) -> pd.DataFrame:
    """One row per group: users, the base model's metric (mean over seeds) and each
    method's difference to base, paired by seed and averaged over the method's seeds."""
    wide = table.pivot_table(index=[by, "seed"], columns="method", values=metric)
    groups = wide.index.get_level_values(by).unique()
    users = table.drop_duplicates(by).set_index(by)["users"]
    out = pd.DataFrame({by: groups, "users": users.reindex(groups).to_numpy(),
                        f"{BASE} {metric}": wide[BASE].groupby(level=by).mean().reindex(groups).map("{:.4f}".format).to_numpy()})
    for method in (m for m in table["method"].unique() if m != BASE):
        paired = (wide[method] - wide[BASE]).dropna().groupby(level=by).mean().reindex(groups)
        out[f"{method} - base"] = paired.map("{:+.4f}".format).to_numpy()
    return out


def investigation(tracker: GridTracker, runs: pd.DataFrame, data: GridData, dataset: str, folder: Path,
                  doc_folder: Path) -> str:
    """Learning curves and per-group breakdowns for every cell where a method loses to base."""
    losing = losing_cells(runs)
    if BASE not in set(runs["method"]):
        return f"No {BASE} cells among these runs: nothing to compare against."
    if not losing:
        return f"Every method's mean test AUC is at or above the {BASE} model's."
    users = user_groups(data)
    lengths = users["history_length"].value_counts().sort_index()
    parts = [
        "Cells whose mean test AUC is below the base model's: "
        + ", ".join(f"{b}/{m}" for b, m in losing) + ".",
        "",
        "Test history lengths (items in the window): "
        + ", ".join(f"{length}: {count} users" for length, count in lengths.items())
        + (". Every test window is full, so a per-history-length breakdown has one group; the"
           " breakdown below is by user activity (quartiles of the user's train positives) instead."
           if len(lengths) == 1 else "."),
    ]
    paired = paired_user_differences(tracker, runs, losing)
    if not paired.empty:
        parts += ["", "Paired per-user difference to base (same backbone and seed; interval: mean ± 1.96 standard"
                  " errors over users):", "", paired.to_markdown(index=False, disable_numparse=True)]
    for backbone in dict.fromkeys(b for b, _ in losing):
        methods = [m for b, m in losing if b == backbone]
        curve = folder / f"{dataset}_{backbone}_learning_curves.png"
        learning_curves(tracker, runs, backbone, methods, curve)
        parts += ["", f"#### {backbone}", "", f"![learning curves]({curve.relative_to(doc_folder).as_posix()})", ""]
        for by in ("activity", "history_length") if len(lengths) > 1 else ("activity",):
            table = breakdown(tracker, runs, users, backbone, methods, by)
            for metric in ("auc", "ndcg@10"):
                parts += [f"Test {metric.upper()} by {by.replace('_', ' ')}: base, and each variant minus base "
                          f"(paired by seed, mean over seeds):", "", relative_to_base(table, by, metric).to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(parts)


def activity_breakdown(tracker: GridTracker, runs: pd.DataFrame, data: GridData) -> str:
    """Test AUC per user-activity quartile: base, and every other method minus base
    (paired by seed, mean over seeds), per backbone."""
    if BASE not in set(runs["method"]):
        return f"No {BASE} cells among these runs: nothing to compare against."
    users = user_groups(data)
    parts = []
    for backbone in runs["backbone"].unique():
        methods = [m for m in runs[runs["backbone"] == backbone]["method"].unique() if m != BASE]
        table = breakdown(tracker, runs, users, backbone, methods, "activity")
        parts += [f"Test AUC by user activity, {backbone}:", "",
                  relative_to_base(table, "activity", "auc").to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(parts)


def write_section(doc: Path, name: str, markdown: str, header: str = "# Results\n") -> None:
    """Replace (or append) the section between ``name``'s markers in ``doc``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else header
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


# Per-seed CSV column -> the runs frame's (MLflow) column.
PER_SEED_COLUMNS = {
    "backbone": "backbone", "method": "method", "seed": "seed",
    **{name: f"test.{mlflow_metric_name(name)}" for name in metric_names()},
    "best_epoch": "training.best_epoch", "epochs": "training.epochs",
    "seconds_per_epoch": "training.seconds_per_epoch", "train_rows_per_second": "training.train_rows_per_second",
    **{f"personalization_{key}": f"personalization.{key}" for key in (
        "seconds_per_device", "loop_seconds_per_device", "generation_ms_p50_single", "payload_bytes",
        "device_extra_bytes", "device_ms_per_candidate", "head_reads_candidate", "cloud_seconds_per_round",
        "download_bytes_per_round", "upload_bytes_per_round")},
    "wall_seconds": "wall_seconds", "config_hash": "config_hash", "run_id": "run_id",
}
CELL = ["backbone", "method", "seed"]


# A method's metrics per round of a device-cloud loop (DCCL): personalization.round<r>_<metric>.
ROUND_METRIC = re.compile(r"^personalization\.round(\d+)_(.+)$")


def per_seed_table(runs: pd.DataFrame) -> pd.DataFrame:
    present = {k: v for k, v in PER_SEED_COLUMNS.items() if v in runs.columns}
    present.update({column.replace(".", "_", 1): column for column in runs.columns if ROUND_METRIC.match(column)})
    return runs[list(present.values())].set_axis(list(present), axis=1)


def rounds_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Test quality after each round, for methods that report rounds (mean ± std over seeds)."""
    numbers = sorted({int(ROUND_METRIC.match(c).group(1)) for c in runs.columns if ROUND_METRIC.match(c)})
    rows = []
    for (backbone, method), group in runs.groupby(["backbone", "method"], sort=False):
        for number in numbers:
            values = {name: group.get(f"personalization.round{number}_{mlflow_metric_name(name)}")
                      for name in headline_metrics()}
            values = {name: v.dropna() for name, v in values.items() if v is not None and v.notna().any()}
            if values:
                rows.append({"backbone": backbone, "method": method, "round": number,
                             "seeds": max(len(v) for v in values.values()),
                             **{name: mean_std(v) for name, v in values.items()}})
    return pd.DataFrame(rows)


def recorded_runs(path: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Cells of the committed per-seed record (``path``) that ``runs`` does not hold, as
    runs-frame rows marked ``recorded``: a fresh machine has no MLflow store, and a
    grid over some methods must not drop the others' record."""
    if not path.exists():
        return pd.DataFrame()
    record = pd.read_csv(path)
    record = record.rename(columns={**PER_SEED_COLUMNS, **{c: c.replace("_", ".", 1) for c in record.columns
                                                           if c.startswith("personalization_round")}})
    record = record[record["method"].isin(method_names())]
    if not runs.empty:
        done = pd.MultiIndex.from_frame(runs[CELL])
        record = record[~pd.MultiIndex.from_frame(record[CELL]).isin(done)]
    return record.assign(recorded=True)


def training_minutes(runs: pd.DataFrame) -> float:
    """Minutes of work behind the runs, counting the base training that base and
    finetune share once."""
    if runs.empty:
        return 0.0
    model = runs["method"].map(_trained_model)
    return float(runs.assign(model=model).drop_duplicates(["backbone", "seed", "model"])["wall_seconds"].sum() / 60)


def write_dataset_results(tracker: GridTracker, units: list[Unit], data: GridData, doc: Path,
                          context: dict[str, Any], reuse_stale: bool = False) -> pd.DataFrame:
    """docs/RESULTS.md section and docs/results/<dataset>.csv for the planned cells."""
    dataset = units[0].dataset
    folder = doc.parent / "results"
    folder.mkdir(parents=True, exist_ok=True)
    tracked = planned_runs(tracker, units, reuse_stale)
    recorded = recorded_runs(folder / f"{dataset}.csv", tracked)
    runs = pd.concat([tracked, recorded], ignore_index=True) if len(recorded) else tracked
    if len(runs):
        order = {m: i for i, m in enumerate(method_names())}
        runs = runs.sort_values(CELL, key=lambda c: c.map(order) if c.name == "method" else c, ignore_index=True)
    planned = sum(len(u.cells) for u in units)
    header = [
        f"## {dataset}", "",
        f"- command: {context['command']}",
        f"- machine: {context['machine']}; trainings: {context['jobs']} at once, {context['threads']} thread(s) each",
        f"- date: {context['date']}" + ("" if context.get("wall_seconds") is None
                                        else f"; this invocation's wall time {context['wall_seconds'] / 60:.1f} min"),
        f"- compute: {training_minutes(runs):.0f} min of training and personalisation summed over the"
        f" finished trainings (wall time with {context['jobs']} at once: about"
        f" {training_minutes(runs) / max(context['jobs'], 1):.0f} min)",
        f"- cells finished: {len(tracked)} of {planned} planned"
        + (f", and {len(recorded)} more kept from the per-seed record (earlier invocations, possibly"
           " earlier code; their predictions are not on this machine, so the activity and losing-cell"
           " breakdowns below read the finished cells only)" if len(recorded) else "")
        + f"; per-seed values in [results/{dataset}.csv](results/{dataset}.csv)",
    ]
    if runs.empty:
        write_section(doc, dataset, "\n".join(header + ["", "No finished cells yet."]))
        return runs
    per_seed_table(runs).to_csv(folder / f"{dataset}.csv", index=False, float_format="%.6g")
    body = header + [
        "", "### Test quality (mean ± std over seeds; 1 positive + 99 negatives per user)", "",
        quality_table(runs, dataset).to_markdown(index=False, disable_numparse=True),
        "", "### Training and personalisation cost (medians over seeds)", "",
        timing_table(runs).to_markdown(index=False, disable_numparse=True),
    ]
    devices = device_cost_table(runs)
    if not devices.empty:
        body += ["", devices.to_markdown(index=False, disable_numparse=True)]
    rounds = rounds_table(runs)
    if not rounds.empty:
        body += ["", "### By round of the device-cloud loop (test; round 0 = before any distillation)", "",
                 rounds.to_markdown(index=False, disable_numparse=True)]
    if not tracked.empty:
        body += ["", "### By user activity", "", activity_breakdown(tracker, tracked, data)]
        body += ["", "### Where a method does not beat base", "",
                 investigation(tracker, tracked, data, dataset, folder, doc.parent)]
    write_section(doc, dataset, "\n".join(body))
    return runs
