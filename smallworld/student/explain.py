"""Why did the student decide this? Per-feature contributions to the positive class's logit margin.

Features are the reference implementation's (:func:`.features.reference_buckets`), so each
contribution is attributed to the readable n-gram or token that produced it. Contributions add up, with
the bias, to the model's margin for the positive class against the mean of the other classes.
"""

from __future__ import annotations

import re

import numpy as np

from . import features
from .linear import LinearStudent

_WORD_RUN = re.compile(rb"[0-9A-Za-z\x80-\xff]+")  # the features' word bytes


def _features(text: str, cfg: dict) -> list[tuple[str, int]]:
    """(readable feature, bucket) for every feature occurrence of the item: the buckets are the reference
    implementation's (:func:`.features.reference_buckets`), the names the n-grams and tokens behind them, in
    the same order."""
    raw = features._item_bytes(text)
    b = raw[: cfg["max_bytes"]]
    if cfg["lowercase"]:
        b = features._LOWER[np.frombuffer(b, dtype=np.uint8)].tobytes()
    framed = b"\x02" + b + b"\x03"
    F, nmin, nmax = len(framed), cfg["ngram_min"], cfg["ngram_max"]
    names = [f"'{framed[i:i + n].decode('utf-8', 'replace')}'".replace("\x02", "^").replace("\x03", "$")
             for i in range(F) for n in range(nmin, nmax + 1) if i + n <= F]
    if cfg["tokens"]:
        names += [f"token:{t.decode('utf-8', 'replace')}" for t in _WORD_RUN.findall(b)]
    buckets = features.reference_buckets(raw, cfg)
    assert len(names) == len(buckets)
    return list(zip(names, buckets.tolist()))


def explain(model: LinearStudent, text: str, pos: int, top: int = 10) -> dict:
    feats = _features(text, model.feature_config)
    K = model.W.shape[1]
    others = [k for k in range(K) if k != pos]
    w = model.W[:, pos].astype(np.float64) - model.W[:, others].astype(np.float64).mean(axis=1)
    bias = float(model.b[pos] - model.b[others].mean())
    scale = 1.0 / np.sqrt(len(feats)) if feats else 0.0
    contrib: dict[str, float] = {}
    for name, bucket in feats:
        contrib[name] = contrib.get(name, 0.0) + float(w[bucket]) * scale
    margin = bias + sum(contrib.values())
    items = sorted(contrib.items(), key=lambda kv: -abs(kv[1]))
    return {"margin": margin, "bias": bias, "probs": model.predict_proba([text])[0].tolist(),
            "toward": [(k, v) for k, v in sorted(contrib.items(), key=lambda kv: -kv[1])[:top] if v > 0],
            "against": [(k, v) for k, v in sorted(contrib.items(), key=lambda kv: kv[1])[:top] if v < 0],
            "n_features": len(feats), "top_abs": items[:top]}
