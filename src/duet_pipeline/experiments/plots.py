"""The record's figures: the cost-quality frontier and learning curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator
import numpy as np
import pandas as pd

from .tables import BASE, comparisons, in_order

# Cost axes of the frontier: record column -> axis label. A method absent from an axis
# did not measure that cost; base sends nothing and holds nothing beyond itself.
FRONTIER_COSTS = {
    "personalization_payload_bytes": "bytes the cloud sends per request",
    "personalization_device_extra_bytes": "bytes the device holds beyond the base model",
    "personalization_device_ms_per_candidate": "device ms per candidate",
}
ZERO_COST = {"personalization_payload_bytes", "personalization_device_extra_bytes"}  # base's is 0 by definition


def pareto_optimal(costs: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Whether each point is on the frontier: no other point costs no more and gains no
    less, with one of the two strictly."""
    costs, gains = np.asarray(costs, float), np.asarray(gains, float)
    dominated = ((costs[None, :] <= costs[:, None]) & (gains[None, :] >= gains[:, None])
                 & ((costs[None, :] < costs[:, None]) | (gains[None, :] > gains[:, None])))
    return ~dominated.any(axis=1)


def frontier_points(part: pd.DataFrame, gains: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per method of one backbone's cells ``part`` with this cost: median cost over seeds,
    AUC gain over base (from ``gains``, its comparisons with base, by method) with its
    interval, and whether it is Pareto-optimal."""
    rows = []
    for method, group in in_order(part).groupby("method", sort=False):
        cost = group[column].median() if column in group else np.nan
        if method == BASE:
            cost = 0.0 if column in ZERO_COST else cost
            rows.append({"method": method, "cost": cost, "gain": 0.0, "low": 0.0, "high": 0.0})
        elif method in gains.index and pd.notna(cost):
            d = gains.loc[method, "difference"]
            rows.append({"method": method, "cost": cost, "gain": d.mean,
                         "low": d.low if pd.notna(d.low) else d.mean, "high": d.high if pd.notna(d.high) else d.mean})
    points = pd.DataFrame(rows, columns=["method", "cost", "gain", "low", "high"]).dropna(subset=["cost"])
    points["optimal"] = pareto_optimal(points["cost"].to_numpy(), points["gain"].to_numpy()) if len(points) else []
    return points.reset_index(drop=True)


def frontier(cells: pd.DataFrame, backbone: str, dataset: str, path: Path) -> None:
    """Three panels, one per cost, log-scaled (zero on its own tick): AUC gain over base
    (with its 95% interval over seeds) against the cost; Pareto-optimal methods filled
    and named, the others hollow."""
    figure, axes = plt.subplots(1, len(FRONTIER_COSTS), figsize=(5.2 * len(FRONTIER_COSTS), 4.4), sharey=True)
    part = cells[cells["backbone"] == backbone]
    gains = comparisons(part, BASE).set_index("method")
    for axis, (column, label) in zip(axes, FRONTIER_COSTS.items()):
        points = frontier_points(part, gains, column)
        positive = points["cost"][points["cost"] > 0]
        floor = positive.min() / 10 if len(positive) else 1.0
        x = points["cost"].where(points["cost"] > 0, floor)
        for optimal in (True, False):
            chosen = points["optimal"] == optimal
            axis.errorbar(x[chosen], points["gain"][chosen],
                          yerr=[points["gain"][chosen] - points["low"][chosen], points["high"][chosen] - points["gain"][chosen]],
                          fmt="o", color="#C44E52" if optimal else "#4C72B0", mfc=None if optimal else "white",
                          capsize=3, label="Pareto-optimal" if optimal else "dominated")
        for row, at in zip(points.itertuples(), x):
            axis.annotate(row.method, (at, row.gain), textcoords="offset points", xytext=(4, 4),
                          fontsize=8, fontweight="bold" if row.optimal else "normal")
        frontier_line = points[points["optimal"]].assign(x=x[points["optimal"]]).sort_values("x")
        axis.step(frontier_line["x"], frontier_line["gain"], where="post", color="#C44E52", alpha=0.4)
        axis.set_xscale("log")
        _cost_ticks(axis, positive, floor if (points["cost"] == 0).any() else None)
        axis.axhline(0, color="grey", lw=0.8)
        axis.set_xlabel(f"{label} (log scale)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"test AUC − {BASE} (95% CI over seeds)")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{dataset}, {backbone}: what each method's gain costs")
    figure.tight_layout()
    _save(figure, path)


def _cost_ticks(axis: plt.Axes, positive: pd.Series, zero_at: float | None) -> None:
    """Three or four ticks spread over the measured costs (a range within one decade would get no
    major tick of a log axis), and "0" at ``zero_at`` where some method costs nothing."""
    if positive.empty:
        return
    low, high = positive.min(), positive.max()
    ticks = list(np.unique(np.geomspace(low, high, 4 if high > 10 * low else 3)))
    labels = [f"{t:.3g}" for t in ticks]
    margin = max(1.1, (high / low) ** 0.15)
    if zero_at is not None:
        ticks, labels = [zero_at, *ticks], ["0", *labels]
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticks(ticks, labels, fontsize=8)
    axis.set_xlim(ticks[0] / margin, high * margin)


def learning_curves(history: pd.DataFrame, backbone: str, methods: list[str], path: Path) -> None:
    """Validation AUC per epoch of base and the given methods' models, every seed."""
    figure, axis = plt.subplots(figsize=(7, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, method in zip(colours, [BASE, *methods]):
        curves = history[(history["backbone"] == backbone) & (history["method"] == method)]
        for i, (_, curve) in enumerate(curves.groupby("seed")):
            axis.plot(curve["epoch"], curve["val_auc"], color=colour, alpha=0.8, marker=".",
                      label=method if i == 0 else None)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation AUC")
    axis.set_title(f"{backbone}: learning curves (every seed)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
