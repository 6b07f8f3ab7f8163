"""Hashed features, defined precisely enough to re-implement anywhere (the C scorer in ``serve/`` does).

For an item, take its UTF-8 bytes (at most ``max_bytes``), optionally ASCII-lowercased, framed as
``0x02 + bytes + 0x03``. Features are
  * every byte n-gram with ``ngram_min <= n <= ngram_max`` of the framed bytes, hashed with 32-bit FNV-1a
    (offset 2166136261, prime 16777619), the hash of an n-gram being the FNV state after its n-th byte;
  * if ``tokens``: every maximal run of "word bytes" (ASCII letters and digits, and bytes >= 0x80),
    hashed with FNV-1a starting from the state after a 0x01 byte.
Each occurrence adds 1 to bucket ``hash & (2**dim_bits - 1)``; the vector is then scaled by 1/sqrt(count).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)
# The feature settings' types, bounds and defaults: the model file's schema (shared with the C scorer).
SCHEMA = json.loads((Path(__file__).with_name("model.schema.json")).read_text(encoding="utf-8"))
SETTINGS = SCHEMA["features"]
DEFAULTS = {k: s["default"] for k, s in SETTINGS.items()}


def config(overrides: dict | None = None) -> dict:
    """The feature settings: the defaults with ``overrides`` applied, each checked against the schema (no
    coercion: ``"5"``, ``18.7``, ``18.0`` or ``"false"`` are refused, as the C scorer refuses them)."""
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError("the feature settings must be a table")
    cfg = dict(DEFAULTS)
    for k, v in (overrides or {}).items():
        s = SETTINGS.get(k)
        if s is None:
            raise ValueError(f"unknown feature setting {k!r}; known: {sorted(DEFAULTS)}")
        if s["type"] == "boolean":
            if not isinstance(v, bool):
                raise ValueError(f"feature setting {k!r} must be true or false, not {v!r}")
        elif isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"feature setting {k!r} must be an integer, not {v!r}")
        elif not s["min"] <= v <= s["max"]:
            raise ValueError(f"feature setting {k!r} must be between {s['min']} and {s['max']}, not {v}")
        cfg[k] = v if isinstance(v, bool) else int(v)
    if cfg["ngram_min"] > cfg["ngram_max"]:
        raise ValueError("need ngram_min <= ngram_max")
    return cfg


def pack(texts) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the items' UTF-8 bytes into one buffer with offsets (what the kernels read)."""
    if not isinstance(texts, (list, tuple)):
        texts = list(texts)
    try:
        joined = "".join(texts)
    except TypeError:  # bytes items
        joined = None
    if joined is not None:
        if not joined.isascii():  # (O(1) in CPython) each non-ASCII item as its UTF-8 bytes, one char a byte
            texts = [t if t.isascii() else t.encode("utf-8", "surrogatepass").decode("latin-1") for t in texts]
            joined = "".join(texts)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=offsets[1:])
        return np.frombuffer(joined.encode("latin-1"), dtype=np.uint8), offsets
    enc = [t.encode("utf-8", "surrogatepass") if isinstance(t, str) else bytes(t) for t in texts]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    if enc:
        np.cumsum([len(e) for e in enc], out=offsets[1:])
    buf = np.frombuffer(b"".join(enc), dtype=np.uint8) if enc else np.zeros(0, np.uint8)
    return buf, offsets


def spans(texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(buf, starts, ends): the items' UTF-8 bytes in one buffer, item i at buf[starts[i]:ends[i]] (what the
    fast kernels read). One join and one encode, with a NUL byte between items: a single pass over the
    Python strings (``pack`` needs two or more), which on a large list costs more than the bytes do."""
    if not isinstance(texts, (list, tuple)):
        texts = list(texts)
    try:
        buf = np.frombuffer("\0".join(texts).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    except TypeError:  # bytes items
        buf = None
    if buf is not None:
        seps = np.flatnonzero(buf == 0)
        if len(seps) == len(texts) - 1:  # else some item holds a NUL itself
            starts = np.empty(len(texts), dtype=np.int64)
            ends = np.empty(len(texts), dtype=np.int64)
            starts[0], starts[1:] = 0, seps + 1
            ends[:-1], ends[-1] = seps, len(buf)
            return buf, starts, ends
    buf, offsets = pack(texts)
    return buf, offsets[:-1], offsets[1:]


# -- the reference implementation -----------------------------------------------------------------------------
# The definition above, written to be read (numpy, one item at a time). The numba kernels (``kernels.py``), the
# explanation and the C scorer are tested against it bit for bit; small batches are scored with it, so a
# process that scores a few lines never imports numba or loads a kernel (the start-up a one-line `score` pays).
SMALL_ITEMS = 256
SMALL_CHARS = 1 << 16
_WORD = np.zeros(256, dtype=bool)
for _a, _b in ((48, 58), (65, 91), (97, 123), (128, 256)):
    _WORD[_a:_b] = True


def _item_bytes(t) -> bytes:
    return t.encode("utf-8", "surrogatepass") if isinstance(t, str) else bytes(t)


def reference_features(item: bytes, cfg: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(grams, valid, tokens)`` of one item's UTF-8 bytes: ``grams[n - 1, j]`` is the FNV-1a hash of the
    framed item's n-gram that ends at byte j, counted where ``valid`` (``n >= ngram_min`` and the n-gram fits);
    ``tokens`` the hashes of its word runs in order (empty without ``tokens``). Bucket = hash & (2**dim_bits - 1)."""
    nmin, nmax = cfg["ngram_min"], cfg["ngram_max"]
    x = np.frombuffer(item[:cfg["max_bytes"]], dtype=np.uint8)
    if cfg["lowercase"]:
        x = _LOWER[x]
    fr = np.concatenate([[2], x, [3]]).astype(np.uint32)
    F = len(fr)
    grams = np.zeros((nmax, F), dtype=np.uint32)
    grams[0] = (np.full(F, FNV_OFFSET, dtype=np.uint32) ^ fr) * FNV_PRIME
    for n in range(2, nmax + 1):
        grams[n - 1, 1:] = (grams[n - 2, :-1] ^ fr[1:]) * FNV_PRIME
    n_of = np.arange(1, nmax + 1)[:, None]
    valid = (n_of >= nmin) & (np.arange(F)[None, :] >= n_of - 1)
    toks: list[int] = []
    if cfg["tokens"]:
        h0 = ((int(FNV_OFFSET) ^ 1) * int(FNV_PRIME)) & 0xFFFFFFFF
        h, inword = h0, False
        for c in x.tolist():
            if _WORD[c]:
                h, inword = ((h ^ c) * int(FNV_PRIME)) & 0xFFFFFFFF, True
            elif inword:
                toks.append(h)
                h, inword = h0, False
        if inword:
            toks.append(h)
    return grams, valid, np.array(toks, dtype=np.uint32)


def reference_buckets(item: bytes, cfg: dict) -> np.ndarray:
    """Every feature occurrence's bucket, in the kernels' order: n-grams by start byte, then by length; then tokens."""
    grams, _, toks = reference_features(item, cfg)
    mask = np.uint32((1 << cfg["dim_bits"]) - 1)
    F = grams.shape[1]
    start, n = np.meshgrid(np.arange(F), np.arange(cfg["ngram_min"], cfg["ngram_max"] + 1), indexing="ij")
    keep = start + n <= F
    return np.concatenate([grams[n[keep] - 1, (start + n - 1)[keep]], toks]) & mask


def reference_prob(item: bytes, cfg: dict, w: np.ndarray, b0: float) -> float:
    """P(positive) of one item for a two-class model (``binary_weights``), summing the weights in exactly the
    order the kernels do (n-grams by their last byte, longest first, the bytes past the first ngram_max - 1 a
    partial sum each; then tokens), so the result equals theirs to the last bit."""
    nmin, nmax = cfg["ngram_min"], cfg["ngram_max"]
    grams, valid, toks = reference_features(item, cfg)
    mask = np.uint32((1 << cfg["dim_bits"]) - 1)
    V = np.where(valid, w[grams & mask].astype(np.float64), 0.0)
    F = grams.shape[1]
    j1 = min(F, nmax - 1)
    first = [V[n - 1, j] for j in range(j1) for n in range(j + 1, 0, -1) if n >= nmin]
    s = np.zeros(F - j1)
    for n in range(nmax, 0, -1):
        if n >= nmin:
            s += V[n - 1, j1:]
    seq = np.concatenate([first, s, w[toks & mask].astype(np.float64)])
    total = float(np.add.accumulate(seq)[-1]) if len(seq) else 0.0
    k = int(valid.sum()) + len(toks)
    z = b0 + total * (1.0 / math.sqrt(k) if k > 0 else 0.0)
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (e + 1.0)


def binary_weights(W: np.ndarray, b: np.ndarray, pos: int) -> tuple[np.ndarray, float]:
    """A two-class model as one weight column and one bias: (w_pos - w_neg, b_pos - b_neg). The column is
    float64 (exact for float32 weights), or float32 when that holds it exactly: the usual case, as training
    leaves each row summing to zero (w_neg = -w_pos), and half the memory traffic."""
    if W.shape[1] != 2:
        raise ValueError("binary_weights needs a two-class model")
    neg = 1 - pos
    w = np.ascontiguousarray(W[:, pos], dtype=np.float64) - W[:, neg]
    w32 = w.astype(np.float32)
    if np.array_equal(w32, w):
        w = w32
    return w, float(b[pos]) - float(b[neg])


def binary_probs(texts, cfg: dict, w: np.ndarray, b0: float) -> np.ndarray:
    """P(positive) per item for a two-class model given as ``binary_weights``; equals the softmax of
    ``logits`` to rounding (about 1e-15)."""
    if not isinstance(texts, (list, tuple)):
        texts = list(texts)
    if len(texts) <= SMALL_ITEMS and sum(map(len, texts)) <= SMALL_CHARS:
        return np.array([reference_prob(_item_bytes(t), cfg, w, b0) for t in texts], dtype=np.float64)
    from . import kernels

    buf, starts, ends = spans(texts)
    out = np.empty(len(starts), dtype=np.float64)
    kernels._binary(buf, starts, ends, *fast_args(cfg), w, float(b0), out)
    return out


def fast_args(cfg: dict) -> tuple:
    """``kernel_args`` for the kernels built on ``_sum``: the n-gram lengths carried by array types, and
    lowercasing as a byte map."""
    nmin, nmax, tokens, lower, max_bytes, mask = kernel_args(cfg)
    return _ndim(nmin), _ndim(nmax), tokens, _LOWER if lower else _SAME, max_bytes, mask


_SAME = np.arange(256, dtype=np.uint8)
_LOWER = _SAME.copy()
_LOWER[65:91] += 32


@functools.lru_cache(maxsize=None)
def _ndim(n: int) -> np.ndarray:
    """An empty array with n dimensions: n as a type."""
    return np.empty((0,) * n, dtype=np.uint8)


def kernel_args(cfg: dict) -> tuple:
    """The feature settings as the kernels take them: nmin, nmax, tokens, lower, max_bytes, mask."""
    return (cfg["ngram_min"], cfg["ngram_max"], cfg["tokens"], cfg["lowercase"], cfg["max_bytes"],
            np.uint32((1 << cfg["dim_bits"]) - 1))


def transform(texts, cfg: dict) -> sp.csr_matrix:
    """Sparse feature matrix (n_items x 2**dim_bits), duplicates summed."""
    import scipy.sparse as sp  # here, not at import: scoring never pays for it

    from . import kernels

    buf, offsets = pack(texts)
    idx, data, indptr = kernels._csr(buf, offsets, *kernel_args(cfg))
    X = sp.csr_matrix((data, idx, indptr), shape=(len(offsets) - 1, 1 << cfg["dim_bits"]))
    X.sum_duplicates()
    return X


def logits(buf: np.ndarray, offsets: np.ndarray, cfg: dict, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    from . import kernels

    out = np.empty((len(offsets) - 1, W.shape[1]), dtype=np.float64)
    kernels._score(buf, offsets, *kernel_args(cfg), W, b, out)
    return out
