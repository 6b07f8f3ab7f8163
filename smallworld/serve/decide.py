"""Scores, probabilities and decisions for a batch of texts, as ``smallworld score`` makes them; shared by the
HTTP service and Spark."""

from __future__ import annotations

import numpy as np

from .score import Scorer, _other


def score_and_decide(scorer: Scorer, texts: list[str], mode: str = "best_guess"):
    """``(scores, probs, decisions)``: scores are exactly ``scorer.scores(texts)``; probs has one column per
    label (for two labels ``[s, 1 - s]`` in label order, no second pass); a decision is the positive label
    when its score reaches the ``mode`` threshold, else the likeliest other label."""
    thr = float(scorer.thresholds.get(mode, 0.5))
    s = scorer.scores(texts)
    if len(scorer.labels) == 2:
        P = np.empty((len(s), 2))
        P[:, scorer.pos], P[:, 1 - scorer.pos] = s, 1.0 - s
    else:
        P = scorer.probs(texts)
    pos = scorer.labels[scorer.pos]
    return s, P, [pos if p >= thr else _other(scorer, row) for p, row in zip(s, P)]
