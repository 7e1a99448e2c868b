"""Comparing two methods over seeds: a paired difference, its confidence interval, and a
verdict that holds across the several comparisons a table makes.

Cells of one backbone and seed share their data, negatives and (for base and
fine-tuning) their trained model, so a method is compared with another seed by seed: the
per-seed differences are what varies, and Student's t over them gives the interval
(scipy.stats.ttest_rel). A table compares every method of a backbone with one
reference, so the verdicts use Holm's step-down correction of the p-values: the chance
that any verdict of the table is wrong stays below ``ALPHA``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .metrics import higher_is_better

ALPHA = 0.05  # family-wise error rate of one table's verdicts; intervals are 1 - ALPHA
BETTER, WORSE = "better", "worse"


@dataclass(frozen=True)
class Difference:
    """``method - reference`` over paired seeds."""

    mean: float
    low: float  # the 1 - ALPHA confidence interval of the mean
    high: float
    seeds: int
    p_value: float  # two-sided, H0: no difference (nan below 2 seeds)

    def interval(self, digits: int = 4) -> str:
        if np.isnan(self.low):
            return f"{self.mean:+.{digits}f}"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def paired_difference(values: np.ndarray, reference: np.ndarray, confidence: float = 1 - ALPHA) -> Difference:
    """The mean of ``values - reference`` (paired by position) with its Student-t interval."""
    values, reference = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    differences = values - reference
    seeds, mean = len(differences), float(differences.mean())
    if seeds < 2:
        return Difference(mean, np.nan, np.nan, seeds, np.nan)
    if np.all(differences == differences[0]):  # no spread: t is undefined, the difference is exact
        return Difference(mean, mean, mean, seeds, 1.0 if mean == 0 else 0.0)
    test = stats.ttest_rel(values, reference)
    interval = test.confidence_interval(confidence)
    return Difference(mean, float(interval.low), float(interval.high), seeds, float(test.pvalue))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and is not counted): the k-th
    smallest of m is multiplied by m - k + 1, and the adjusted values made monotone."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (len(valid) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def verdict(difference: Difference, adjusted_p: float, metric: str = "auc") -> str:
    """better / worse (for ``metric``'s direction) where the adjusted p-value is below
    ``ALPHA``; otherwise the difference cannot be told from seed noise at this many seeds."""
    if np.isnan(adjusted_p) or adjusted_p >= ALPHA:
        return f"not separable at n={difference.seeds}"
    up = difference.mean > 0
    return BETTER if up == higher_is_better(metric) else WORSE
