"""Calibration and combination: the teacher's probabilities calibrated on labelled seed rows (Platt or vector
scaling with balanced class weights), the teacher combined with students (``Combiner``), the class-balanced
samples they are fitted on, and the soft-target transforms (``sharpen``, ``confidence``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from .choices import COMBINE_RULES

if TYPE_CHECKING:  # pragma: no cover
    from .teacher.prompting import Demonstrations

def sample_idx(n: int, k: int, seed: int) -> np.ndarray:
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def balanced_idx(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Up to k indices with as many positives (y true) as negatives where there are enough: the teacher's
    evaluation rows, so its ROC AUC does not rest on a handful of positives of a rare class."""
    if k >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    n_pos = min(len(pos), k // 2)
    n_neg = min(len(neg), k - n_pos)
    n_pos = min(len(pos), k - n_neg)
    return np.sort(np.r_[rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]).astype(int)


def calibration_rows(demos: "Demonstrations", seed_rows: Sequence[dict], n: int, seed: int) -> list[dict]:
    """Up to n seed rows for calibration, never one shown to every item as a fixed demonstration, with the
    positive class as common as the rest where the seed has enough (a seed with 2% positives would otherwise
    calibrate on two or three of them)."""
    fixed = demos.fixed_ids()
    pool = [r for r in seed_rows if r["id"] not in fixed and r.get("label") in demos.task.labels]
    return [pool[i] for i in balanced_idx(np.array([r["label"] == demos.task.positive for r in pool]), n, seed)]


# -- calibration ------------------------------------------------------------------------------------------
def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def _fit_logistic(X: np.ndarray, y: np.ndarray, K: int, balanced: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A (multinomial) logistic regression as per-class coefficients and intercepts: class 0 is the reference
    for two classes (lr.classes_ are the labels present, sorted)."""
    lr = LogisticRegression(C=10.0, max_iter=1000, class_weight="balanced" if balanced else None).fit(X, y)
    coef, inter = np.zeros((K, X.shape[1])), np.zeros(K)
    if K == 2:
        coef[1], inter[1] = lr.coef_[0], lr.intercept_[0]
    else:
        for j, c in enumerate(lr.classes_):
            coef[c], inter[c] = lr.coef_[j], lr.intercept_[j]
    return coef, inter


class Calibrator:
    """Maps raw teacher probabilities to calibrated ones, fitted on labelled rows the teacher answered.

    Binary tasks: Platt scaling on logit(p); multi-class: a temperature and per-class bias on log p
    (multinomial logistic regression on log-probabilities). Stored as plain numbers in the manifest.

    Fitted with balanced class weights by default: the labelled seed's class mix is not the mix of the
    rows the teacher labels (telemetry), and an unbalanced fit would bake the seed's prior into every
    answer (measured on cmdlines: it turned 74% of telemetry "malicious" answers into 16% and made the
    distilled student worse than the seed alone). Balanced, 0.5 means "as likely one as the other".
    """

    def __init__(self, K: int, balanced: bool = True):
        self.K = K
        self.balanced = balanced
        self.coef = None
        self.intercept = None

    @staticmethod
    def _logit(P: np.ndarray) -> np.ndarray:
        P = np.clip(P, 1e-6, 1 - 1e-6)
        return np.log(P)

    def fit(self, P: np.ndarray, y: np.ndarray) -> "Calibrator":
        ok = ~np.isnan(P).any(axis=1)
        P, y = P[ok], y[ok]
        if len(np.unique(y)) < 2 or len(y) < 10:
            return self  # not enough to fit: identity
        self.coef, self.intercept = _fit_logistic(self._features(P), y, self.K, self.balanced)
        return self

    def _features(self, P: np.ndarray) -> np.ndarray:
        L = self._logit(P)
        if self.K == 2:
            return (L[:, 1] - L[:, 0])[:, None]
        return L

    def transform(self, P: np.ndarray) -> np.ndarray:
        if self.coef is None:
            return P
        out = np.full_like(P, np.nan)
        ok = ~np.isnan(P).any(axis=1)
        out[ok] = _softmax(self._features(P[ok]) @ self.coef.T + self.intercept)
        return out

    def to_dict(self) -> dict:
        return {"K": self.K, "coef": None if self.coef is None else self.coef.tolist(),
                "intercept": None if self.intercept is None else self.intercept.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        c = cls(int(d["K"]))
        if d.get("coef") is not None:
            c.coef = np.asarray(d["coef"], dtype=float)
            c.intercept = np.asarray(d["intercept"], dtype=float)
        return c


# -- soft targets -----------------------------------------------------------------------------------------
class Combiner:
    """The teacher and one or more students together, fitted on the calibration rows: seed rows the teacher
    labelled without themselves among its demonstrations, and each student's group-out-of-fold probabilities for
    the same rows. Two rules (plain numbers, stored in the manifest):

    * ``equal`` (the default): each model calibrated on those rows on its own (Platt scaling, balanced), then
      their log-odds (binary) or log-probabilities (multi-class) summed: a product of experts in which each
      keeps the weight its own calibration gives it. Where the teacher is unsure (near 0.5) the students'
      confidence decides, and the other way round.
    * ``learned``: one logistic regression on all the models' log-odds, with balanced class weights. It learns
      how far to trust each model *relative to the others on the seed's sources*; on a source the seed lacks the
      seed-trained student is the one that falls, so the learned weights over-trust it (measured in the
      README: the learned rule gave the teacher a weight of 0.2 against the student's 1.5 on the LOLBAS split).

    ``Ps`` (in ``fit`` and ``transform``) is one student's probabilities or a list of several students'.
    """

    RULES = COMBINE_RULES

    def __init__(self, K: int, rule: str = "equal"):
        if rule not in self.RULES:
            raise ValueError(f"combination rule {rule!r}: one of {', '.join(self.RULES)}")
        self.K = K
        self.rule = rule
        self.cal = Calibrator(K)          # learned: the joint logistic regression
        self.teacher_cal = Calibrator(K)  # equal: each model on its own
        self.student_cals: list[Calibrator] = []

    @property
    def fitted(self) -> bool:
        return (self.cal.coef if self.rule == "learned" else self.teacher_cal.coef) is not None

    @staticmethod
    def _students(Ps) -> list[np.ndarray]:
        return list(Ps) if isinstance(Ps, (list, tuple)) else [Ps]

    def _features(self, Pt: np.ndarray, Ps: list[np.ndarray]) -> np.ndarray:
        return np.hstack([self.cal._features(Pt)] + [self.cal._features(P) for P in Ps])

    def fit(self, Pt: np.ndarray, Ps, y: np.ndarray) -> "Combiner":
        ok = ~np.isnan(Pt).any(axis=1)
        Pt, Ps, y = Pt[ok], [P[ok] for P in self._students(Ps)], y[ok]
        if len(np.unique(y)) < 2 or len(y) < 10:
            return self
        if self.rule == "learned":
            self.cal.coef, self.cal.intercept = _fit_logistic(self._features(Pt, Ps), y, self.K)
        else:
            self.teacher_cal.fit(Pt, y)
            self.student_cals = [Calibrator(self.K).fit(P, y) for P in Ps]
        return self

    def transform(self, Pt: np.ndarray, Ps) -> np.ndarray:
        if not self.fitted:
            return Pt
        Ps = self._students(Ps)
        out = np.full_like(Pt, np.nan)
        ok = ~np.isnan(Pt).any(axis=1)
        if self.rule == "learned":
            out[ok] = _softmax(self._features(Pt[ok], [P[ok] for P in Ps]) @ self.cal.coef.T + self.cal.intercept)
        else:
            log = lambda P: np.log(np.clip(P, 1e-6, 1.0))
            z = log(self.teacher_cal.transform(Pt[ok]))
            for c, P in zip(self.student_cals, Ps):
                z = z + log(c.transform(P[ok]))
            out[ok] = _softmax(z)
        return out

    def to_dict(self) -> dict:
        if self.rule == "learned":
            return {"rule": "learned", "features": "log-odds (binary) or log-probabilities: teacher, then each student",
                    **self.cal.to_dict()}
        return {"rule": "equal", "teacher": self.teacher_cal.to_dict(), "students": [c.to_dict() for c in self.student_cals]}


def sharpen(P: np.ndarray, temperature: float) -> np.ndarray:
    """p_i^(1/T) renormalised: T < 1 sharpens, T > 1 softens, T = 1 leaves P as it is."""
    L = np.log(np.clip(P, 1e-9, 1.0)) / temperature
    L -= L.max(axis=1, keepdims=True)
    E = np.exp(L)
    return E / E.sum(axis=1, keepdims=True)


def confidence(P: np.ndarray) -> np.ndarray:
    """1 - normalised entropy: 1 for a certain answer, 0 for a uniform one."""
    K = P.shape[1]
    H = -(np.clip(P, 1e-12, 1) * np.log(np.clip(P, 1e-12, 1))).sum(axis=1)
    return 1.0 - H / np.log(K)
