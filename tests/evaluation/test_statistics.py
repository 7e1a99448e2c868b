"""Paired differences, Holm's correction and verdicts, against plain references."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from duet_pipeline.evaluation.statistics import ALPHA, BETTER, WORSE, holm, paired_difference, verdict


def test_paired_interval_is_the_t_interval_of_the_per_seed_differences() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0.9, 0.01, size=5)
    values = reference + rng.normal(0.004, 0.002, size=5)
    d = values - reference
    half = stats.t.ppf(1 - ALPHA / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    found = paired_difference(values, reference)
    assert found.mean == pytest.approx(d.mean(), rel=1e-12)
    assert (found.low, found.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert found.p_value == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1), rel=1e-9)
    assert found.seeds == 5


def test_paired_means_pairing_not_two_independent_samples() -> None:
    # A large seed-to-seed spread shared by both: paired, the constant gain is exact.
    reference = np.array([0.80, 0.90, 0.85])
    found = paired_difference(reference + 0.01, reference)
    assert found.mean == pytest.approx(0.01) and found.low == pytest.approx(0.01) and found.p_value == 0.0
    assert paired_difference(reference, reference).p_value == 1.0


def test_one_seed_has_no_interval() -> None:
    found = paired_difference(np.array([0.9]), np.array([0.8]))
    assert np.isnan(found.low) and np.isnan(found.p_value) and found.interval() == "+0.1000"
    assert verdict(found, np.nan) == "not separable at n=1"


def brute_force_holm(p: list[float]) -> list[float]:
    """Holm's adjusted p by its definition: max over the hypotheses ranked at or before
    this one of (m - rank) * p, capped at 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rank = {i: r for r, i in enumerate(order)}
    return [min(1.0, max((len(p) - rank[j]) * p[j] for j in order[: rank[i] + 1])) for i in range(len(p))]


@pytest.mark.parametrize("seed", range(20))
def test_holm_matches_its_definition(seed: int) -> None:
    p = np.random.default_rng(seed).uniform(0, 0.2, size=int(np.random.default_rng(seed).integers(1, 9))).tolist()
    assert holm(p) == pytest.approx(brute_force_holm(p), rel=1e-12)


def test_holm_textbook_example_and_nan() -> None:
    # Holm (1979) style example: 0.01, 0.04, 0.03, 0.005 with m = 4.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.02, float("nan"), 0.01])
    assert np.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)


def test_holm_never_rejects_more_than_bonferroni_less_than_unadjusted() -> None:
    for p in itertools.product([0.001, 0.01, 0.02, 0.2], repeat=3):
        adjusted = holm(list(p))
        assert all(raw <= a <= min(1.0, 3 * raw) for raw, a in zip(p, adjusted))


def test_verdict_follows_direction_and_adjusted_p() -> None:
    up = paired_difference(np.array([0.91, 0.92, 0.93]), np.array([0.90, 0.905, 0.92]))
    down = paired_difference(np.array([0.90, 0.905, 0.92]), np.array([0.91, 0.92, 0.93]))
    assert verdict(up, 0.01) == BETTER and verdict(down, 0.01) == WORSE
    assert verdict(up, 0.01, metric="logloss") == WORSE  # lower log loss is better
    assert verdict(up, ALPHA) == "not separable at n=3"
