"""Metrics of PROTOCOL section 5, vectorised over users and independent of row order.

Ranking metrics assume one positive per user (1 positive + 99 negatives) and break a
tie between the positive and a negative against the positive (pessimistic).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

RANKING_CUTOFFS = (5, 10, 20)


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
    return metrics
