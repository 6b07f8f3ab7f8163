"""Metrics and reports: ROC AUC, PR AUC, TPR at fixed FPR, expected calibration error, per source and per class.

For a task with more than two classes the headline numbers are the positive class against all others.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

FPRS = (1e-4, 1e-3, 1e-2)


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, fpr_max: float) -> float | None:
    if y.min() == y.max():
        return None
    fpr, tpr, _ = roc_curve(y, s)
    ok = fpr <= fpr_max
    return float(tpr[ok].max()) if ok.any() else 0.0


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of P(positive), equal-width bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / len(y))


def binary_metrics(y: np.ndarray, s: np.ndarray) -> dict:
    """y: 1 for the positive class; s: P(positive) (or any score for the ranking metrics)."""
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    out = {"n": int(len(y)), "positives": int(y.sum())}
    if len(y) == 0:
        return out | {"roc_auc": None, "pr_auc": None, "tpr_at_fpr": {f"{f:g}": None for f in FPRS}, "ece": None}
    both = y.min() != y.max()
    out["roc_auc"] = float(roc_auc_score(y, s)) if both else None
    out["pr_auc"] = float(average_precision_score(y, s)) if both else None
    out["tpr_at_fpr"] = {_key(f): tpr_at_fpr(y, s, f) if both else None for f in FPRS}
    out["ece"] = ece(y, np.clip(s, 0, 1)) if s.min() >= 0 and s.max() <= 1 else None
    return out


def bootstrap_interval(y: np.ndarray, s: np.ndarray, stat=None, n: int = 1000, level: float = 0.90,
                       seed: int = 0) -> tuple[float, float]:
    """A stratified bootstrap interval of ``stat(y, s)`` (default ROC AUC): positives and negatives are resampled
    separately, so every resample holds both classes and the class balance of the set."""
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    stat = stat or (lambda yy, ss: float(roc_auc_score(yy, ss)))
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("bootstrap_interval needs both classes")
    draws = [stat(y[i], s[i]) for i in (np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))] for _ in range(n))]
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _key(f: float) -> str:
    return {1e-4: "0.0001", 1e-3: "0.001", 1e-2: "0.01"}.get(f, repr(f))


def evaluate(labels: tuple[str, ...], positive: str, y_labels: list[str], probs: np.ndarray,
             sources: list[str] | None = None, threshold: float | None = None) -> dict:
    """The evaluation JSON: headline (positive vs rest), per source, per class, and the decision at threshold."""
    pos = labels.index(positive)
    lab_idx = {lab: i for i, lab in enumerate(labels)}
    yi = np.array([lab_idx[v] for v in y_labels], dtype=int)
    y = (yi == pos).astype(int)
    s = probs[:, pos]
    out = binary_metrics(y, s)
    if threshold is not None:
        pred = s >= threshold
        out["threshold"] = threshold
        out["at_threshold"] = {"tpr": float(pred[y == 1].mean()) if y.sum() else None,
                               "fpr": float(pred[y == 0].mean()) if (1 - y).sum() else None}
    if sources is not None:
        per = {}
        src = np.asarray(sources, dtype=object)
        for name in sorted(set(sources)):
            m = src == name
            per[name] = binary_metrics(y[m], s[m])
        out["per_source"] = per
    if len(labels) > 2:
        out["per_class"] = {lab: binary_metrics((yi == i).astype(int), probs[:, i]) for i, lab in enumerate(labels)}
    return out


def threshold_at_fpr(y: np.ndarray, s: np.ndarray, fpr_max: float) -> float:
    """The lowest threshold whose false-positive rate on (y, s) stays within fpr_max."""
    neg = np.sort(s[y == 0])[::-1]
    if len(neg) == 0:
        return 0.5
    k = int(np.floor(fpr_max * len(neg)))
    # scores strictly above the (k+1)-th highest negative keep at most k false positives
    return float(np.nextafter(neg[min(k, len(neg) - 1)], np.inf))


def best_f1_threshold(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s)
    ys = y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    prec = tp / np.maximum(tp + fp, 1)
    rec = tp / max(ys.sum(), 1)
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    i = int(np.argmax(f1))
    return float(s[order][i])
