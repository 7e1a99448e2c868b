"""Tests for duet_pipeline.data.report: counts, events per user and the protocol's warnings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duet_pipeline.data.declarations import parse_declarations
from duet_pipeline.data.events import Events, FileCounts, read_events
from duet_pipeline.data.report import REPLAY_MIN_CLICKS, data_report


def _events(per_user: dict[int, int], catalogue: int) -> Events:
    """Users with the given numbers of events on items 1..catalogue, dealt in turn (user 1
    gets 1, 2, ..., the next user continues, wrapping): every item is touched, and a user
    with n <= catalogue events touches n distinct items."""
    assert sum(per_user.values()) >= catalogue and max(per_user.values()) <= catalogue
    users, items = [], []
    for user, count in per_user.items():
        users += [user] * count
        items += [(len(items) + j) % catalogue + 1 for j in range(count)]
    frame = pd.DataFrame({"user_id": np.array(users, dtype=np.int64), "item_id": np.array(items, dtype=np.int64),
                          "rating": 3.0, "timestamp": np.arange(len(users), dtype=np.int64) * 1000 + 1_000_000})
    frame["row_order"] = np.arange(len(frame), dtype=np.int64)
    assert frame["item_id"].nunique() == catalogue
    return Events(frame, [FileCounts("log.csv", len(frame))])


def _figures(report, scope: str = "all") -> dict[str, str]:
    rows = report.table[report.table["scope"] == scope]
    return dict(zip(rows["figure"], rows["value"]))


def test_counts_and_events_per_user_match_numpy() -> None:
    per_user = {1: 40, 2: 13, 3: 17, 4: 25, 5: 13, 6: 90, 7: 14}
    events = _events(per_user, catalogue=200)  # user 6: 90 items touched, 110 left for 99 negatives
    report = data_report(events, min_user_interactions=5, negatives=99)
    counts = np.array(list(per_user.values()))
    assert report.metrics["users"] == 7
    assert report.metrics["items"] == 200
    assert report.metrics["events_read"] == report.metrics["events_kept"] == counts.sum()
    assert report.metrics["events_dropped"] == 0
    assert report.metrics["events_per_user_median"] == pytest.approx(np.median(counts)) == 17
    assert report.metrics["events_per_user_p90"] == pytest.approx(np.percentile(counts, 90))
    figures = _figures(report)
    assert figures["events per user, median"] == f"{np.median(counts):g}"
    assert figures["events per user, p90"] == f"{np.percentile(counts, 90):g}"
    assert figures["users"] == "7" and figures["events read"] == str(counts.sum())
    assert figures["first event"] == "1970-01-01 00:16:40 UTC"
    last_ms = 1_000_000 + (counts.sum() - 1) * 1000
    assert figures["last event"] == pd.Timestamp(last_ms, unit="ms").strftime("%Y-%m-%d %H:%M:%S UTC")
    assert report.warnings == [] and "warning" not in set(report.table["figure"])
    text = report.text("tiny")
    assert text.startswith("Data report for tiny:") and "warning" not in text
    assert f"events read {counts.sum():,}, kept {counts.sum():,}, dropped 0" in text
    assert "median 17" in text


def test_even_number_of_users_median() -> None:
    per_user = {1: 13, 2: 20, 3: 30, 4: 100}
    report = data_report(_events(per_user, catalogue=163), min_user_interactions=5, negatives=10)
    assert report.warnings == []
    assert report.metrics["events_per_user_median"] == np.median([13, 20, 30, 100]) == 25.0
    assert report.metrics["events_per_user_p90"] == pytest.approx(np.percentile([13, 20, 30, 100], 90))


def test_short_users_warn() -> None:
    events = _events({1: 3, 2: 8, 3: 20, 4: 30}, catalogue=61)
    report = data_report(events, min_user_interactions=5, negatives=10)
    assert len(report.warnings) == 2
    protocol, replay = report.warnings
    assert protocol.startswith("1 of 4 users (25%) have fewer than 5 events") and "min_user_interactions" in protocol
    assert replay.startswith(f"2 of 4 users (50%) have fewer than {REPLAY_MIN_CLICKS} events")
    assert list(report.table.loc[report.table["figure"] == "warning", "value"]) == report.warnings
    assert report.text("x").count("\n  warning: ") == 2


def test_short_users_boundaries() -> None:
    # Exactly min_user_interactions and exactly 13 events are long enough.
    report = data_report(_events({1: 13, 2: 13}, catalogue=26), min_user_interactions=13, negatives=10)
    assert report.warnings == []
    report = data_report(_events({1: 12, 2: 13}, catalogue=25), min_user_interactions=12, negatives=10)
    assert len(report.warnings) == 1 and "1 of 2 users (50%) have fewer than 13" in report.warnings[0]
    report = data_report(_events({1: 13, 2: 13}, catalogue=26), min_user_interactions=14, negatives=10)
    assert len(report.warnings) == 1 and "have fewer than 14 events" in report.warnings[0]


def test_too_few_items_for_the_negatives_warns() -> None:
    # 60 items: users 1 and 2 touch 20 each (40 left), user 3 touches 30 (30 left): too few for 99.
    report = data_report(_events({1: 20, 2: 20, 3: 30}, catalogue=60), min_user_interactions=5, negatives=99)
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("3 users have fewer than 99 items they never touched (60 items in all)")
    # Enough for 40 negatives (60 - 20 = 40 for users 1, 2), not for user 3 (60 - 30 = 30).
    report = data_report(_events({1: 20, 2: 20, 3: 30}, catalogue=60), min_user_interactions=5, negatives=40)
    assert len(report.warnings) == 1 and report.warnings[0].startswith("1 users have fewer than 40 items")
    report = data_report(_events({1: 20, 2: 20, 3: 20}, catalogue=60), min_user_interactions=5, negatives=40)
    assert report.warnings == []


def test_repeated_items_count_once_for_the_negatives() -> None:
    # Each user: 14 events on 2 items of 4, so 2 items untouched (not 4 - 14).
    frame = pd.DataFrame({"user_id": [1] * 14 + [2] * 14, "item_id": [1, 2] * 7 + [3, 4] * 7, "rating": 3.0,
                          "timestamp": np.arange(28) * 1000, "row_order": np.arange(28)})
    events = Events(frame, [FileCounts("f", len(frame))])
    assert data_report(events, min_user_interactions=5, negatives=2).warnings == []
    assert data_report(events, min_user_interactions=5, negatives=3).warnings == [
        ("2 users have fewer than 3 items they never touched (4 items in all): too few "
         "for 3 negatives per positive (PROTOCOL §2.7)")]


def test_user_2_short_for_99_negatives_is_reported() -> None:
    # The same log: user 2 touched 99 of 101 items: 2 untouched < 99.
    frame = pd.DataFrame({"user_id": [1] * 14 + [2] * 99, "item_id": [1, 2] * 7 + list(range(3, 102)),
                          "rating": 3.0, "timestamp": np.arange(113) * 1000, "row_order": np.arange(113)})
    report = data_report(Events(frame, [FileCounts("f", 113)]), min_user_interactions=5, negatives=99)
    assert report.warnings == [("1 users have fewer than 99 items they never touched (101 items in all): too few "
                                "for 99 negatives per positive (PROTOCOL §2.7)")]


def test_per_file_counts_from_a_read_log(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "a.csv").write_text("u,i,r,t\n1,10,4,100\n1,10,4,100\n1,11,2,101\n2,10,5,102\n")
    (folder / "b.csv").write_text("u,i,r,t\n1,10,4,100\n3,13,3,104\n3,14,1,105\n")
    declaration = parse_declarations({"log": {
        "path": "log", "format": "csv", "columns": {"user": "u", "item": "i", "time": "t", "rating": "r"},
        "ids": "integer", "time_unit": "s", "min_rating": 3, "duplicates": "drop"}})["log"]
    events = read_events(folder, declaration)
    report = data_report(events, min_user_interactions=1, negatives=1)
    a, b = str(folder / "a.csv"), str(folder / "b.csv")
    assert _figures(report, a) == {"events read": "4", "events kept": "2", "dropped: below_min_rating": "1",
                                   "dropped: duplicate": "1"}
    assert _figures(report, b) == {"events read": "3", "events kept": "1", "dropped: below_min_rating": "1",
                                   "dropped: duplicate": "1"}
    assert report.metrics["events_read"] == 7 and report.metrics["events_kept"] == 3
    assert report.metrics["events_dropped"] == 4
    assert report.metrics["dropped_below_min_rating"] == 2 and report.metrics["dropped_duplicate"] == 2
    assert report.metrics["users"] == 3 and report.metrics["items"] == 2
    figures = _figures(report)
    assert figures["first event"] == "1970-01-01 00:01:40 UTC" and figures["last event"] == "1970-01-01 00:01:44 UTC"
    text = report.text("log")
    assert "events read 7, kept 3, dropped 4 (below min rating 2, duplicate 2)" in text
    assert "users 3, items 2" in text
    assert list(report.table.columns) == ["scope", "figure", "value"]
