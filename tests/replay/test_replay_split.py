"""The replay split (PROTOCOL section 10) against a per-user construction from the protocol text."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duet_pipeline.features.samples import FeatureParams, build_item_index, list_matrix, make_samples
from duet_pipeline.parameters import ParameterError
from duet_pipeline.project import load_parameters

NEGATIVES = {"train": 2, "validation": 3, "test": 3}


def random_log(seed: int, users: int, max_clicks: int) -> pd.DataFrame:
    """Users with 2..max_clicks distinct items each (the first three with max_clicks, so
    that a replay keeps someone), timestamps with ties, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, users + 1):
        clicks = max_clicks if user <= 3 else int(rng.integers(2, max_clicks + 1))
        items = rng.choice(np.arange(1, 80), size=clicks, replace=False)
        times = np.sort(rng.integers(0, clicks // 2 + 1, size=clicks))
        rows += [(user, int(item), 4.0, int(t)) for item, t in zip(items, times)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    frame["row_order"] = np.arange(len(frame))
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def clicks_by_user(log: pd.DataFrame, index: pd.DataFrame) -> dict[int, list[int]]:
    """Each user's dense item ids in click order (time, then file order), written plainly."""
    dense = dict(zip(index["raw_item_id"], index["item_index"]))
    ordered = log.sort_values(["user_id", "timestamp", "row_order"])
    return {user: [dense[i] for i in group["item_id"]] for user, group in ordered.groupby("user_id")}


def window(clicks: list[int], position: int, length: int) -> list[int]:
    before = clicks[max(0, position - length):position]
    return [0] * (length - len(before)) + before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), replay_length=st.integers(1, 6), max_seq_len=st.integers(1, 5))
def test_replay_split_matches_the_protocol(seed, replay_length, max_seq_len):
    log = random_log(seed, users=8, max_clicks=16)
    index = build_item_index(log)
    samples = make_samples(log, index, max_seq_len, 3, NEGATIVES, seed=7, split="replay", replay_length=replay_length)
    expected = {s: [] for s in ("train", "validation", "test", "policy")}
    for user, clicks in clicks_by_user(log, index).items():
        if len(clicks) < replay_length + 3:
            continue  # too short for the replay: dropped
        validation = len(clicks) - replay_length - 1
        for position in range(1, len(clicks)):
            split = "train" if position < validation else "validation" if position == validation else "test"
            row = (user, tuple(window(clicks, position, max_seq_len)), clicks[position])
            expected[split].append(row)
            if split == "train" and position >= validation - replay_length:
                expected["policy"].append(row)
    for split, rows in expected.items():
        frame = samples[split]
        got = list(zip(frame["user_id"], map(tuple, list_matrix(frame, "history", max_seq_len)), frame["target_item"]))
        assert got == rows, split  # click order within a user: a stream replays in order
    # No replayed click is a training target, and every negative avoids the user's whole history.
    replayed = {(u, t) for u, _, t in expected["test"]}
    assert not replayed & {(u, t) for u, _, t in expected["train"]}
    history = clicks_by_user(log, index)
    for split in ("train", "validation", "test", "policy"):
        frame = samples[split]
        for user, negatives in zip(frame["user_id"], list_matrix(frame, "negatives")):
            assert not set(negatives.tolist()) & set(history[user])


def test_leave_one_out_is_unchanged_by_the_replay_option():
    log = random_log(3, users=8, max_clicks=14)
    index = build_item_index(log)
    plain = make_samples(log, index, 4, 3, NEGATIVES, seed=7)
    explicit = make_samples(log, index, 4, 3, NEGATIVES, seed=7, split="leave_one_out", replay_length=5)
    assert plain.keys() == explicit.keys() == {"train", "validation", "test"}
    for split in plain:
        pd.testing.assert_frame_equal(plain[split], explicit[split])


def test_short_users_are_dropped_and_counted(caplog):
    log = random_log(5, users=10, max_clicks=14)
    index = build_item_index(log)
    counts = log.groupby("user_id").size()
    with caplog.at_level(logging.WARNING):
        samples = make_samples(log, index, 4, 3, NEGATIVES, seed=7, split="replay", replay_length=8)
    short = int((counts < 11).sum())
    assert samples["test"]["user_id"].nunique() == len(counts) - short
    if short:
        assert f"{short} of {len(counts)} users have fewer than 11 clicks" in caplog.text


def test_a_replay_no_user_can_give_fails_naming_the_parameter():
    log = random_log(5, users=5, max_clicks=10)
    with pytest.raises(ParameterError, match=r"features.replay_length = 50: no user has the 53 clicks"):
        make_samples(log, build_item_index(log), 4, 3, NEGATIVES, seed=7, split="replay", replay_length=50)


@pytest.mark.parametrize("change, message", [
    ({"replay_length": 0}, r"features.replay_length = 0: Input should be greater than or equal to 1"),
    ({"split": "time"}, r"features.split = 'time': Input should be 'leave_one_out' or 'replay'"),
    ({"split": "replay", "engine": "spark"}, r"features.split = 'replay': the replay split is built by the pandas"),
])
def test_bad_split_parameters_fail_on_one_line(change, message):
    features = {**load_parameters()["features"], **change}
    with pytest.raises(ParameterError, match=message) as error:
        FeatureParams.from_params(features)
    assert "\n" not in str(error.value)
