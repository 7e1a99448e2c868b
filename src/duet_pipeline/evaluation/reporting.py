"""Predictions -> metrics tables and plots."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: pipelines and CI have no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .metrics import compute_metrics, headline_metrics, metric_names


def metrics_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per method with every PROTOCOL section 5 metric, in order of appearance."""
    rows = []
    for method, rows_of_method in predictions.groupby("method", sort=False):
        metrics = compute_metrics(
            rows_of_method["user_id"].to_numpy(),
            rows_of_method["label"].to_numpy(),
            rows_of_method["score"].to_numpy(),
        )
        rows.append({"method": method, "users": rows_of_method["user_id"].nunique(), **metrics})
    return pd.DataFrame(rows)


def auc_bar_chart(table: pd.DataFrame, title: str) -> plt.Figure:
    """Bar chart of test AUC per method, values printed on the bars."""
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(table)), 3.5))
    bars = axis.bar(table["method"], table["auc"], color="#4C72B0")
    axis.bar_label(bars, fmt="%.4f", fontsize=8)
    low = float(table["auc"].min())
    axis.set_ylim(max(0.0, low - 0.05), min(1.0, float(table["auc"].max()) + 0.02))
    axis.set_ylabel("test AUC")
    axis.set_title(title)
    figure.tight_layout()
    return figure


def comparison_markdown(metrics: pd.DataFrame, devices: pd.DataFrame, title: str) -> str:
    """The comparison of methods as a markdown document: quality, then per-device cost."""
    headline = headline_metrics()
    quality = metrics[["method", *headline, *(name for name in metric_names() if name not in headline)]]
    parts = [f"# Methods compared: {title}", "", "Test metrics (1 positive + 99 negatives per user):", "",
             quality.to_markdown(index=False, floatfmt=".4f"), *below_base_notes(metrics)]
    if not devices.empty:
        parts += ["", "Per-device cost of personalisation:", "", devices.to_markdown(index=False, floatfmt=".4g")]
    return "\n".join(parts) + "\n"


BELOW_BASE_EXPLAINED = "docs/RESULTS.md (\"Where a method does not beat base\", per dataset and backbone)"


def below_base_notes(metrics: pd.DataFrame) -> list[str]:
    """A line naming every method whose test AUC is below base's in this run, and where
    the repository explains when and why that happens: the table must not leave a reader
    to believe a method wins when it does not."""
    if "base" not in set(metrics["method"]):
        return []
    base_auc = float(metrics.loc[metrics["method"] == "base", "auc"].iloc[0])
    below = metrics[metrics["auc"] < base_auc]
    if below.empty:
        return []
    names = ", ".join(f"{m} ({a - base_auc:+.4f})" for m, a in zip(below["method"], below["auc"]))
    return ["", f"Below base in test AUC in this run: {names}. One seed; see {BELOW_BASE_EXPLAINED}."]


def activity_groups(train_positive_users: np.ndarray, users: np.ndarray, bins: int = 4) -> pd.DataFrame:
    """Per user of ``users``: its number of train positives (its entries in
    ``train_positive_users``) and its activity quartile ("Q1: 3-17 train positives",
    lightest first), the groups POSO is meant to help."""
    positives = pd.Series(np.asarray(train_positive_users)).value_counts()
    groups = pd.DataFrame({"user_id": np.asarray(users)})
    groups["train_positives"] = groups["user_id"].map(positives).fillna(0).astype(int)
    quartile = pd.qcut(groups["train_positives"], bins, labels=False, duplicates="drop")
    ranges = groups.groupby(quartile)["train_positives"].agg(["min", "max"])
    names = {q: f"Q{q + 1}: {low}-{high} train positives" for q, (low, high) in ranges.iterrows()}
    groups["activity"] = quartile.map(names)
    return groups


def activity_table(predictions: pd.DataFrame, train_positive_users: np.ndarray) -> pd.DataFrame:
    """Every metric per method and user-activity quartile, methods in order of appearance:
    does a method help light users, or only heavy ones?"""
    groups = activity_groups(train_positive_users, predictions["user_id"].unique())
    merged = predictions.merge(groups[["user_id", "activity"]], on="user_id")
    rows = []
    for (method, activity), part in merged.groupby(["method", "activity"], sort=False):
        rows.append({"method": method, "activity": activity, "users": part["user_id"].nunique(),
                     **compute_metrics(part["user_id"].to_numpy(), part["label"].to_numpy(), part["score"].to_numpy())})
    order = {name: i for i, name in enumerate(predictions["method"].unique())}
    table = pd.DataFrame(rows)
    return table.iloc[np.lexsort((table["activity"], table["method"].map(order)))].reset_index(drop=True)
