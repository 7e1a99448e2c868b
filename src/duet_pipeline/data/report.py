"""The data report: what the ingestion read, kept and dropped, and whether the log suits the protocol.

One tidy table (scope, figure, value): per file the events read, kept and dropped by
reason; over the dataset the users, items, events per user (median, p90), the time range,
and warnings naming the figure where users are too short for the protocol (PROTOCOL §2:
``min_user_interactions``; §10: the replay's R + 3 clicks) or the catalogue is too small
for the negatives (§2.7). Printed by the ingestion, written as a versioned table and
logged to MLflow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .events import DROP_REASONS, Events

# PROTOCOL §10: the replay holds each user's last R = 10 clicks, plus a validation click
# and two train clicks before them.
REPLAY_MIN_CLICKS = 13
ALL = "all"


@dataclass
class DataReport:
    table: pd.DataFrame  # scope, figure, value (text: counts, dates and warnings share the column)
    metrics: dict[str, float]  # the dataset-wide counts, for MLflow
    warnings: list[str]

    def text(self, dataset: str) -> str:
        """The report as the ingestion prints it."""
        figures = dict(zip(self.table.loc[self.table["scope"] == ALL, "figure"],
                           self.table.loc[self.table["scope"] == ALL, "value"]))
        dropped = ", ".join(f"{reason.replace('_', ' ')} {int(self.metrics[f'dropped_{reason}']):,}"
                            for reason in DROP_REASONS)
        lines = [f"Data report for {dataset}:",
                 f"  events read {int(self.metrics['events_read']):,}, kept {int(self.metrics['events_kept']):,}, "
                 f"dropped {int(self.metrics['events_dropped']):,} ({dropped})",
                 f"  users {int(self.metrics['users']):,}, items {int(self.metrics['items']):,}; events per user: "
                 f"median {figures['events per user, median']}, p90 {figures['events per user, p90']}",
                 f"  time {figures['first event']} .. {figures['last event']}"]
        return "\n".join(lines + [f"  warning: {warning}" for warning in self.warnings])


def data_report(events: Events, min_user_interactions: int, negatives: int) -> DataReport:
    """The report of ``events``; ``negatives``: the most negatives a positive needs (99)."""
    rows: list[tuple[str, str, str]] = []
    for file in events.files:
        rows += [(file.path, "events read", str(file.read)), (file.path, "events kept", str(file.kept))]
        rows += [(file.path, f"dropped: {reason}", str(count)) for reason, count in file.dropped.items()]
    interactions = events.interactions
    per_user = interactions.groupby("user_id").size().to_numpy()
    read = sum(file.read for file in events.files)
    kept = len(interactions)
    metrics = {"events_read": read, "events_kept": kept, "events_dropped": read - kept,
               **{f"dropped_{reason}": sum(f.dropped[reason] for f in events.files) for reason in DROP_REASONS},
               "users": len(per_user), "items": int(interactions["item_id"].nunique()),
               "events_per_user_median": float(np.median(per_user)),
               "events_per_user_p90": float(np.percentile(per_user, 90))}
    times = pd.to_datetime(interactions["timestamp"].agg(["min", "max"]), unit="ms", utc=True)
    rows += [(ALL, _label(name), f"{value:g}") for name, value in metrics.items()]
    rows += [(ALL, "first event", times.iloc[0].strftime("%Y-%m-%d %H:%M:%S UTC")),
             (ALL, "last event", times.iloc[1].strftime("%Y-%m-%d %H:%M:%S UTC"))]
    warnings = _warnings(interactions, per_user, min_user_interactions, negatives)
    rows += [(ALL, "warning", warning) for warning in warnings]
    return DataReport(pd.DataFrame(rows, columns=["scope", "figure", "value"]), metrics, warnings)


def _label(metric: str) -> str:
    """A metric's name as the table shows it: ``dropped_duplicate`` -> "dropped: duplicate"."""
    if metric.startswith("dropped_"):
        return f"dropped: {metric[len('dropped_'):]}"
    return {"events_per_user_median": "events per user, median",
            "events_per_user_p90": "events per user, p90"}.get(metric, metric.replace("_", " "))


def _warnings(interactions: pd.DataFrame, per_user: np.ndarray, min_user_interactions: int,
              negatives: int) -> list[str]:
    warnings = []
    users = len(per_user)
    short = int((per_user < min_user_interactions).sum())
    if short:
        warnings.append(f"{short:,} of {users:,} users ({short / users:.0%}) have fewer than {min_user_interactions} "
                        f"events (features.min_user_interactions, PROTOCOL §2) and are left out of the samples")
    replay_short = int((per_user < REPLAY_MIN_CLICKS).sum())
    if replay_short:
        warnings.append(f"{replay_short:,} of {users:,} users ({replay_short / users:.0%}) have fewer than "
                        f"{REPLAY_MIN_CLICKS} events: too short for the replay (PROTOCOL §10: R = 10 clicks + 3)")
    items = int(interactions["item_id"].nunique())
    distinct = interactions.groupby("user_id")["item_id"].nunique().to_numpy()
    starved = int((items - distinct < negatives).sum())
    if starved:
        warnings.append(f"{starved:,} users have fewer than {negatives} items they never touched ({items:,} items in "
                        f"all): too few for {negatives} negatives per positive (PROTOCOL §2.7)")
    return warnings
