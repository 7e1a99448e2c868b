"""The replay's table, plot and MLflow metrics, across methods (PROTOCOL section 10)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: the pipeline writes files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from duet_pipeline.evaluation.statistics import paired_difference  # noqa: E402

GAP_BUDGETS = (0.1, 0.2)  # the budgets the headline reports the share of the gap kept at
GAP_TARGETS = (0.5, 0.8)  # the share of always - never each should keep (issue 29's targets)


def with_gap_kept(rows: pd.DataFrame) -> pd.DataFrame:
    """Adds ``gap_kept``: the share of ``always - never`` a row's AUC recovers, per method."""
    def kept(group: pd.DataFrame) -> pd.Series:
        always = group.loc[group["policy"] == "always", "auc"]
        never = group.loc[group["policy"] == "never", "auc"]
        if always.empty or never.empty or always.iloc[0] == never.iloc[0]:
            return pd.Series(np.nan, index=group.index)
        return (group["auc"] - never.iloc[0]) / (always.iloc[0] - never.iloc[0])

    parts = [rows.loc[group.index].assign(gap_kept=kept(group)) for _, group in rows.groupby("method", sort=False)]
    return pd.concat(parts)


def replay_markdown(table: pd.DataFrame, title: str, costs: dict[str, dict[str, float]]) -> str:
    """The headline: per method, always, never, their gap, and each policy's AUC and share of
    the gap kept at 10% and 20% requests; then what a learned policy costs a device."""
    lines = [f"## Replay: {title}", "",
             "| method | always | never | always - never | best policy @10% (kept) | best policy @20% (kept) |",
             "|---|---|---|---|---|---|"]
    for method, group in table.groupby("method", sort=False):
        auc = {p: group.loc[group["policy"] == p, "auc"] for p in ("always", "never")}
        cells = []
        for budget in GAP_BUDGETS:
            at = group[np.isclose(group["budget"], budget)]
            if at.empty:
                cells.append("-")
                continue
            best = at.loc[at["auc"].idxmax()]
            cells.append(f"{best['policy']} {best['auc']:.4f} ({best['gap_kept']:.0%})")
        always = auc["always"].iloc[0] if len(auc["always"]) else np.nan
        never = auc["never"].iloc[0] if len(auc["never"]) else np.nan
        lines.append(f"| {method} | {always:.4f} | {never:.4f} | {always - never:+.4f} | {' | '.join(cells)} |")
    learned = {m: c for m, c in costs.items() if "policy_bytes" in c}
    if learned:
        lines += ["", "| method | learned policy bytes | ms per decision | train decisions | replay s |", "|---|---|---|---|---|"]
        lines += [f"| {m} | {c['policy_bytes']:.0f} | {c['policy_ms_per_decision']:.3f} | {c.get('policy_examples', 0):.0f} "
                  f"| {c['replay_seconds']:.1f} |" for m, c in learned.items()]
    return "\n".join(lines) + "\n"


def replay_chart(table: pd.DataFrame, title: str) -> plt.Figure:
    """AUC against request rate: one panel per method, one line per policy."""
    methods = list(dict.fromkeys(table["method"]))
    figure, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.6), squeeze=False, sharey=True)
    for axis, method in zip(axes[0], methods):
        group = table[table["method"] == method]
        for policy, rows in group.groupby("policy", sort=False):
            rows = rows.sort_values("request_rate")
            if policy in ("always", "never"):
                axis.axhline(rows["auc"].iloc[0], linestyle=":" if policy == "never" else "--", color="grey",
                             linewidth=1)
                axis.annotate(policy, (1.0, rows["auc"].iloc[0]), xycoords=("axes fraction", "data"), ha="right",
                              va="bottom", fontsize=8, color="grey")
            else:
                axis.plot(rows["request_rate"], rows["auc"], marker="o", markersize=3, label=policy)
        axis.set_title(method)
        axis.set_xlabel("request rate (requests / later steps)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("AUC over all (device, step) sets")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def replay_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``<method>.<policy>[_budget_<b>].{auc,request_rate,gap_kept}`` (the catalog prefixes
    ``replay.``)."""
    logged = {}
    for row in table.to_dict("records"):
        name = row["policy"] if np.isnan(row["budget"]) else f"{row['policy']}_budget_{row['budget']:g}"
        for field in ("auc", "request_rate", "gap_kept"):
            if not np.isnan(row[field]):
                logged[f"{row['method']}.{name}.{field}"] = row[field]
    return logged


def value_of_real_time(runs: pd.DataFrame, budgets: tuple[float, ...] = GAP_BUDGETS) -> pd.DataFrame:
    """Over seeds (``runs``: replay tables with a ``seed`` column), per method: ``always -
    never`` with its 95% interval (paired by seed, Student's t), and at each budget the best
    policy by seed-mean AUC with the share of the gap it keeps (from the seed means)."""
    rows = []
    for method, group in runs.groupby("method", sort=False):
        by_seed = {p: group[group["policy"] == p].set_index("seed")["auc"] for p in ("always", "never")}
        seeds = sorted(set(by_seed["always"].index) & set(by_seed["never"].index))
        gap = paired_difference(by_seed["always"][seeds].to_numpy(), by_seed["never"][seeds].to_numpy())
        row = {"method": method, "seeds": len(seeds), "always": by_seed["always"][seeds].mean(),
               "never": by_seed["never"][seeds].mean(), "gap": gap.mean, "gap_low": gap.low, "gap_high": gap.high,
               "gap_beyond_noise": bool(gap.low > 0 or gap.high < 0)}
        for budget in budgets:
            at = group[np.isclose(group["budget"], budget)].groupby("policy")[["auc", "request_rate"]].mean()
            if at.empty:
                continue
            best = at["auc"].idxmax()
            kept = (at.loc[best, "auc"] - row["never"]) / gap.mean if gap.mean else np.nan
            row.update({f"best_at_{budget:g}": best, f"auc_at_{budget:g}": at.loc[best, "auc"],
                        f"kept_at_{budget:g}": kept, f"rate_at_{budget:g}": at.loc[best, "request_rate"]})
        rows.append(row)
    return pd.DataFrame(rows)


def real_time_markdown(runs: pd.DataFrame, dataset: str, backbone: str, stay_probability: float | None) -> str:
    """RESULTS.md's section on the value of real time on ``dataset``, from its per-seed rows
    (docs/results/replay-<dataset>.csv, written by benchmarks/replay.py)."""
    summary = value_of_real_time(runs)
    minutes = runs.groupby("seed")["wall_seconds"].first().sum() / 60
    lines = [f"### The value of real time: {dataset}, {backbone}", "",
             f"- command: `python benchmarks/replay.py --dataset {dataset}` (`make benchmark-replay DATASET={dataset}`);"
             f" per-seed rows in [results/replay-{dataset}.csv](results/replay-{dataset}.csv)",
             "- code: " + ", ".join(f"`{v}`" for v in runs["code_version"].unique()),
             "- machine: " + "; ".join(runs["machine"].unique()),
             f"- computed: {runs['finished'].min()} to {runs['finished'].max()}; {minutes:.0f} min of `kedro run` in all",
             *([f"- the synthetic users' interests walk with stay probability {stay_probability} "
                "(parameters_ingestion.yml: synthetic)"] if stay_probability is not None else []),
             "",
             "| method | seeds | always | never | always - never [95% CI] | best @10% requests (gap kept) "
             "| best @20% requests (gap kept) |", "|---|---|---|---|---|---|---|"]
    for row in summary.to_dict("records"):
        interval = f"{row['gap']:+.4f} [{row['gap_low']:+.4f}, {row['gap_high']:+.4f}]"
        cells = [f"{row[f'best_at_{b:g}']} {row[f'auc_at_{b:g}']:.4f} ({row[f'kept_at_{b:g}']:.0%})"
                 for b in GAP_BUDGETS]
        lines.append(f"| {row['method']} | {row['seeds']} | {row['always']:.4f} | {row['never']:.4f} | {interval} | "
                     + " | ".join(cells) + " |")
    lines += ["", real_time_sentence(summary), "", f"![AUC against request rate](results/replay-{dataset}.png)"]
    return "\n".join(lines)


def real_time_sentence(summary: pd.DataFrame) -> str:
    """What the intervals support: where the stale head loses, and how much 10% and 20% keep."""
    parts = []
    for row in summary.to_dict("records"):
        if not row["gap_beyond_noise"]:
            parts.append(f"For {row['method']} the stale head loses nothing measurable at n={row['seeds']} "
                         f"(always - never {row['gap']:+.4f}, interval [{row['gap_low']:+.4f}, {row['gap_high']:+.4f}]).")
            continue
        kept = [(b, row[f"best_at_{b:g}"], row[f"kept_at_{b:g}"]) for b in GAP_BUDGETS]
        verdicts = [f"{policy} keeps {share:.0%} of it at {b:.0%} requests "
                    f"({'meets' if share >= target else 'misses'} the {target:.0%} target)"
                    for (b, policy, share), target in zip(kept, GAP_TARGETS)]
        parts.append(f"For {row['method']} real time is worth {row['gap']:+.4f} AUC: " + "; ".join(verdicts) + ".")
    return " ".join(parts)


def combined(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return with_gap_kept(pd.concat(list(tables.values()), ignore_index=True))


__all__ = ["combined", "real_time_markdown", "replay_chart", "replay_markdown", "replay_metrics", "value_of_real_time",
           "with_gap_kept"]
