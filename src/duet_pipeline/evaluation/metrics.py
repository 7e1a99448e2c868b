"""Metrics of PROTOCOL section 5, vectorised over users and independent of row order.

Every metric is declared once in :data:`METRICS` with its direction and cut-offs; the
training loop's epoch selection, the reports, the MLflow names and the benchmark
tables all read the declarations. Ranking metrics assume one positive per user
(1 positive + 99 negatives) and break a tie between the positive and a negative
against the positive (pessimistic).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class Metric:
    """One metric family: ``ndcg`` with cut-offs (5, 10, 20) gives ndcg@5, ndcg@10, ndcg@20.

    ``headline_cutoffs`` (or ``headline`` for a metric without cut-offs) marks what the
    summary tables show.
    """

    name: str
    higher_is_better: bool
    cutoffs: tuple[int, ...] = ()
    headline: bool = False
    headline_cutoffs: tuple[int, ...] = ()

    def names(self) -> list[str]:
        return [f"{self.name}@{k}" for k in self.cutoffs] if self.cutoffs else [self.name]

    def headline_names(self) -> list[str]:
        if self.cutoffs:
            return [f"{self.name}@{k}" for k in self.headline_cutoffs]
        return [self.name] if self.headline else []


METRICS: tuple[Metric, ...] = (
    Metric("auc", higher_is_better=True, headline=True),
    Metric("uauc", higher_is_better=True, headline=True),
    Metric("ndcg", higher_is_better=True, cutoffs=(5, 10, 20), headline_cutoffs=(10,)),
    Metric("hr", higher_is_better=True, cutoffs=(5, 10, 20), headline_cutoffs=(10,)),
    Metric("logloss", higher_is_better=False, headline=True),
)
RANKING_CUTOFFS = next(m.cutoffs for m in METRICS if m.name == "ndcg")


def metric_names() -> list[str]:
    """Every computed metric, e.g. ['auc', 'uauc', 'ndcg@5', ..., 'logloss']."""
    return [name for metric in METRICS for name in metric.names()]


def headline_metrics() -> list[str]:
    """The metrics the summary tables show: auc, uauc, ndcg@10, hr@10, logloss."""
    return [name for metric in METRICS for name in metric.headline_names()]


def higher_is_better(name: str) -> bool:
    """The direction of a declared metric (``ndcg@10`` -> ndcg's)."""
    family = name.split("@", 1)[0]
    for metric in METRICS:
        if metric.name == family and name in metric.names():
            return metric.higher_is_better
    raise ValueError(f"unknown metric '{name}'; valid: {metric_names()}")


def is_improvement(name: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of metric ``name`` beats ``best`` (None: nothing to beat yet)."""
    if best is None:
        return True
    return value > best if higher_is_better(name) else value < best


def logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of logits, computed stably (no sigmoid overflow)."""
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def per_user_auc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> pd.Series:
    """Each user's AUC (ties count one half, as in sklearn), indexed by user.

    Users whose rows are all positive or all negative have no AUC and are left out.
    """
    frame = pd.DataFrame({"user": users, "label": np.asarray(labels) > 0, "score": scores})
    # Mann-Whitney: AUC = (sum of positive ranks - P(P+1)/2) / (P N), average ranks for ties.
    frame["rank"] = frame.groupby("user")["score"].rank(method="average")
    grouped = frame.groupby("user")
    positives = grouped["label"].sum()
    sizes = grouped.size()
    negatives = sizes - positives
    rank_sum = frame["rank"].where(frame["label"], 0.0).groupby(frame["user"]).sum()
    valid = (positives > 0) & (negatives > 0)
    return (rank_sum[valid] - positives[valid] * (positives[valid] + 1) / 2) / (
        positives[valid] * negatives[valid]
    )


def user_auc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """UAUC: mean over users of each user's AUC (see :func:`per_user_auc`)."""
    aucs = per_user_auc(users, labels, scores)
    return float(aucs.mean()) if len(aucs) else float("nan")


def positive_ranks(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """1-based rank of each user's single positive among that user's rows, ties against it."""
    frame = pd.DataFrame({"user": users, "label": np.asarray(labels) > 0, "score": scores})
    per_user = frame.groupby("user")["label"].sum()
    if (per_user != 1).any():
        bad = per_user[per_user != 1].index[:5].tolist()
        raise ValueError(
            f"ranking metrics need exactly one positive per user; users {bad} have "
            f"{per_user[per_user != 1].iloc[:5].tolist()} positives"
        )
    positive_score = frame.loc[frame["label"]].set_index("user")["score"]
    frame["positive_score"] = frame["user"].map(positive_score)
    # Pessimistic: a negative with the same score as the positive ranks above it.
    beats = (~frame["label"]) & (frame["score"] >= frame["positive_score"])
    return (beats.groupby(frame["user"]).sum() + 1).to_numpy()


def ranking_metrics(ranks: np.ndarray, cutoffs: tuple[int, ...] = RANKING_CUTOFFS) -> dict[str, float]:
    """NDCG@k and HR@k for single-positive users from the positive's rank."""
    metrics = {}
    for k in cutoffs:
        hit = ranks <= k
        metrics[f"ndcg@{k}"] = float(np.mean(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)))
        metrics[f"hr@{k}"] = float(np.mean(hit))
    return metrics


def compute_metrics(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC (pooled, sklearn), UAUC, NDCG@k, HR@k and logloss of one scored split."""
    users = np.asarray(users)
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity: the model diverged")
    metrics = {
        "auc": float(roc_auc_score(labels, scores)),
        "uauc": user_auc(users, labels, scores),
        "logloss": logloss(labels, scores),
    }
    metrics.update(ranking_metrics(positive_ranks(users, labels, scores)))
    # In declaration order, so every table lists the metrics the same way.
    return {name: metrics[name] for name in metric_names()}
