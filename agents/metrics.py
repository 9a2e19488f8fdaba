"""Agreement statistics between a reward and the task: correlations, preference accuracy."""

from __future__ import annotations

import numpy as np


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 0, ties sharing their average rank (as Spearman's rho needs)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    if len(unique) < len(values):  # average the ranks within each group of ties
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation; NaN when either side is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two equal-length series of 2+ values, got {len(x)} and {len(y)}")
    x = x - x.mean()
    y = y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's on tie-averaged ranks)."""
    return pearson(rank(x), rank(y))


def reward_progress_spearman(rewards: np.ndarray, progress: np.ndarray) -> float | None:
    """Spearman correlation of per-step rewards with ``info["progress"]`` over the
    steps whose progress is known (not NaN); None with fewer than 3 such steps or
    when either side is constant there."""
    rewards = np.asarray(rewards, np.float64).reshape(-1)
    progress = np.asarray(progress, np.float64).reshape(-1)
    known = np.isfinite(progress)
    if known.sum() < 3:
        return None
    value = spearman(rewards[known], progress[known])
    return value if np.isfinite(value) else None


def preference_accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    """Fraction of pairs where the sign of ``predicted`` (score a - score b) matches
    ``true``'s; pairs the truth calls equal are left out."""
    predicted = np.asarray(predicted)
    true = np.asarray(true)
    decided = true != 0
    if not decided.any():
        return float("nan")
    return float(np.mean(np.sign(predicted[decided]) == np.sign(true[decided])))
