"""Why did the student decide this? Per-feature contributions to the positive class's logit margin.

Features are enumerated in Python exactly as the kernel defines them (see :mod:`.features`), so each
contribution is attributed to the readable n-gram or token that produced it. Contributions add up, with
the bias, to the model's margin for the positive class against the mean of the other classes.
"""

from __future__ import annotations

import numpy as np

from .linear import LinearStudent

FNV_OFFSET, FNV_PRIME, MASK32 = 2166136261, 16777619, 0xFFFFFFFF


def _features(text: str, cfg: dict) -> list[tuple[str, int]]:
    """(readable feature, bucket) for every feature occurrence of the item."""
    b = text.encode("utf-8", "surrogatepass")[: cfg["max_bytes"]]
    if cfg["lowercase"]:
        b = bytes(c + 32 if 65 <= c <= 90 else c for c in b)
    framed = b"\x02" + b + b"\x03"
    mask = (1 << cfg["dim_bits"]) - 1
    out = []
    for i in range(len(framed)):
        h = FNV_OFFSET
        for n in range(1, cfg["ngram_max"] + 1):
            if i + n > len(framed):
                break
            h = ((h ^ framed[i + n - 1]) * FNV_PRIME) & MASK32
            if n >= cfg["ngram_min"]:
                g = framed[i:i + n].decode("utf-8", "replace").replace("\x02", "^").replace("\x03", "$")
                out.append((f"'{g}'", h & mask))
    if cfg["tokens"]:
        h0 = ((FNV_OFFSET ^ 1) * FNV_PRIME) & MASK32
        tok = bytearray()
        for c in list(b) + [None]:
            if c is not None and (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 128):
                tok.append(c)
                continue
            if tok:
                h = h0
                for x in tok:
                    h = ((h ^ x) * FNV_PRIME) & MASK32
                out.append((f"token:{tok.decode('utf-8', 'replace')}", h & mask))
                tok = bytearray()
    return out


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
