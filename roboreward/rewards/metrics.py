"""Ranks, correlations and success-vs-failure scores: the metrics every reward evaluation shares.

One contract for all of them:

- Inputs are 1-d sequences; two sequences must have one length (else ``ValueError``).
- Ties get their *average* rank (as ``scipy.stats.rankdata``), so Spearman's correlation is exactly
  the Pearson correlation of the average ranks — ``scipy.stats.spearmanr``.
- A correlation is ``None`` where it is undefined: fewer than two pairs, or either side constant
  (a constant has no ranking and no variance). ``None`` rather than NaN because results are written
  as strict JSON (``null``), and NaN would poison the means they are averaged into.
- Pairs where either value is NaN or inf are left out of a correlation (e.g. the first state of an
  episode, which no reward reached).

Users: the reward diagnostics (:mod:`roboreward.rewards.diagnostics`), the progress reward's report
(:meth:`~roboreward.rewards.progress.ProgressReward.report`) and policy evaluation
(:mod:`roboreward.policies.evaluate`).
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------
# Ranks and correlations


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks ``0..n-1`` of ``x``, ties sharing their average rank (``scipy.stats.rankdata(x) - 1``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=ranks)[inverse] / counts[inverse]


def _finite_pairs(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"{name} needs two 1-d sequences of one length; got shapes {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _pearson_of_finite(a: np.ndarray, b: np.ndarray) -> float | None:
    # Constant means all values equal (exactly: the mean of equal floats can differ from them by rounding).
    if len(a) < 2 or a.min() == a.max() or b.min() == b.max():
        return None
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), -1.0, 1.0))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson's correlation of two sequences; None where undefined (a constant, or < 2 finite pairs)."""
    return _pearson_of_finite(*_finite_pairs(a, b, "pearson"))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation: Pearson's of the average ranks; None where undefined (as :func:`pearson`)."""
    a, b = _finite_pairs(a, b, "spearman")
    return _pearson_of_finite(rankdata(a), rankdata(b))


def value_order_correlation(values: np.ndarray) -> float | None:
    """VOC (GVL, Robo-Dopamine): Spearman correlation between values (in time order) and their chronological order."""
    values = np.asarray(values, dtype=np.float64)
    return spearman(values, np.arange(len(values), dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Telling successful episodes from failed ones by a score


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must be 1-d of one length; got shapes {scores.shape} and {labels.shape}")
    if labels.dtype != bool and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be booleans (True = success) or 0/1")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite; the reward model returned NaN or inf")
    return scores, labels.astype(bool)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve: P(a success outscores a failure), ties counting ½ (Mann-Whitney U / n⁺n⁻).

    None when either class is empty.
    """
    scores, labels = _check_scores(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores) + 1.0  # 1-based, ties averaged
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold (score ≥ it means success) of best accuracy on these episodes, and that accuracy.

    Candidates are the midpoints between consecutive distinct scores and ±inf (all success / all
    failure); among equally accurate ones the middle one is taken, for the widest margin.
    """
    scores, labels = _check_scores(scores, labels)
    if len(scores) == 0:
        raise ValueError("best_threshold needs at least one episode")
    distinct = np.unique(scores)
    candidates = np.concatenate([[-np.inf], (distinct[:-1] + distinct[1:]) / 2, [np.inf]])
    accuracy = np.array([np.mean((scores >= c) == labels) for c in candidates])
    best = np.flatnonzero(accuracy == accuracy.max())
    pick = best[len(best) // 2]
    return float(candidates[pick]), float(accuracy[pick])


def cross_validated_accuracy(
    scores: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[float, int] | None:
    """Accuracy of a threshold chosen on other episodes: stratified ``k``-fold cross-validation.

    ``k = min(folds, successes, failures)``; each fold's threshold is :func:`best_threshold` on the
    other folds. Returns (accuracy over all held-out predictions, ``k``), or None with fewer than two
    episodes of either class.
    """
    scores, labels = _check_scores(scores, labels)
    if folds < 2:
        raise ValueError(f"folds={folds} must be >= 2")
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    k = min(folds, len(positives), len(negatives))
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    fold = np.empty(len(scores), dtype=np.int64)
    for group in (positives, negatives):
        fold[rng.permutation(group)] = np.arange(len(group)) % k
    correct = 0
    for f in range(k):
        test = fold == f
        threshold, _ = best_threshold(scores[~test], labels[~test])
        correct += int(((scores[test] >= threshold) == labels[test]).sum())
    return correct / len(scores), k


__all__ = [
    "best_threshold",
    "cross_validated_accuracy",
    "pearson",
    "rankdata",
    "roc_auc",
    "spearman",
    "value_order_correlation",
]
