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

import numba as nb
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)
DEFAULTS = {"ngram_min": 1, "ngram_max": 5, "tokens": True, "lowercase": True, "dim_bits": 18, "max_bytes": 4096}


def config(overrides: dict | None = None) -> dict:
    cfg = dict(DEFAULTS)
    for k, v in (overrides or {}).items():
        if k not in DEFAULTS:
            raise ValueError(f"unknown feature setting {k!r}; known: {sorted(DEFAULTS)}")
        cfg[k] = type(DEFAULTS[k])(v)
    if not (1 <= cfg["ngram_min"] <= cfg["ngram_max"] <= 16):
        raise ValueError("need 1 <= ngram_min <= ngram_max <= 16")
    if not (8 <= cfg["dim_bits"] <= 26):
        raise ValueError("dim_bits must be between 8 and 26")
    if cfg["max_bytes"] < 1:
        raise ValueError("max_bytes must be positive")
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


@nb.njit(cache=True, inline="always")
def _byte(buf, start, L, j, lower):
    # framed byte j of the item: 0x02, the item's bytes, 0x03
    if j == 0:
        return np.uint32(2)
    if j == L + 1:
        return np.uint32(3)
    c = buf[start + j - 1]
    if lower and c >= 65 and c <= 90:
        c += 32
    return np.uint32(c)


@nb.njit(cache=True, inline="always")
def _is_word(c):
    return (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c >= 128


@nb.njit(cache=True)
def _emit(buf, start, end, nmin, nmax, tokens, lower, max_bytes, mask, out):
    """Write the item's bucket indices into out; return how many."""
    L = end - start
    if L > max_bytes:
        L = max_bytes
    F = L + 2
    k = 0
    for i in range(F):
        h = FNV_OFFSET
        for n in range(1, nmax + 1):
            if i + n > F:
                break
            h = (h ^ _byte(buf, start, L, i + n - 1, lower)) * FNV_PRIME
            if n >= nmin:
                out[k] = h & mask
                k += 1
    if tokens:
        h0 = (FNV_OFFSET ^ np.uint32(1)) * FNV_PRIME
        h = h0
        inword = False
        for j in range(L):
            c = buf[start + j]
            if _is_word(c):
                if lower and c >= 65 and c <= 90:
                    c += 32
                h = (h ^ np.uint32(c)) * FNV_PRIME
                inword = True
            elif inword:
                out[k] = h & mask
                k += 1
                h = h0
                inword = False
        if inword:
            out[k] = h & mask
            k += 1
    return k


@nb.njit(cache=True)
def _max_feats(L, nmin, nmax, tokens):
    F = L + 2
    return F * (nmax - nmin + 1) + (L // 2 + 1 if tokens else 0)


@nb.njit(cache=True)
def _csr(buf, offsets, nmin, nmax, tokens, lower, max_bytes, mask):
    n = offsets.shape[0] - 1
    total = 0
    for d in range(n):
        L = min(offsets[d + 1] - offsets[d], max_bytes)
        total += _max_feats(L, nmin, nmax, tokens)
    indices = np.empty(total, dtype=np.int32)
    data = np.empty(total, dtype=np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    scratch = np.empty(_max_feats(max_bytes, nmin, nmax, tokens), dtype=np.uint32)
    pos = 0
    for d in range(n):
        k = _emit(buf, offsets[d], offsets[d + 1], nmin, nmax, tokens, lower, max_bytes, mask, scratch)
        v = np.float32(1.0 / np.sqrt(k)) if k > 0 else np.float32(0.0)
        for j in range(k):
            indices[pos + j] = scratch[j]
            data[pos + j] = v
        pos += k
        indptr[d + 1] = pos
    return indices[:pos], data[:pos], indptr


@nb.njit(cache=True, nogil=True)
def _score(buf, offsets, nmin, nmax, tokens, lower, max_bytes, mask, W, b, out):
    """Fused hashing + look-up + sum: out[d, :] = b + sum(W[idx, :]) / sqrt(count)."""
    n = offsets.shape[0] - 1
    K = W.shape[1]
    scratch = np.empty(_max_feats(max_bytes, nmin, nmax, tokens), dtype=np.uint32)
    acc = np.empty(K, dtype=np.float64)
    for d in range(n):
        k = _emit(buf, offsets[d], offsets[d + 1], nmin, nmax, tokens, lower, max_bytes, mask, scratch)
        for c in range(K):
            acc[c] = 0.0
        for j in range(k):
            row = scratch[j]
            for c in range(K):
                acc[c] += W[row, c]
        s = 1.0 / np.sqrt(k) if k > 0 else 0.0
        for c in range(K):
            out[d, c] = b[c] + acc[c] * s


# -- the fast path for two classes --------------------------------------------------------------------------
# Softmax over two classes depends only on z_pos - z_neg, so a binary model scores with one weight column
# (w_pos - w_neg, exact: see ``binary_weights``) and one add per feature. ``_sum`` walks the same
# features as ``_emit`` without writing them out (n-grams by their last byte, then tokens): a second
# implementation of the definition above, held equal to ``_emit`` by the tests. The kernels built on it
# take ngram_min and ngram_max as the number of dimensions of empty arrays (``fast_args``): numba compiles
# (and caches on disk) one kernel per argument *types*, so each setting gets its own machine code with the
# n-gram loop unrolled, about 1.7x faster than with the lengths as run-time values (``numba.literally``
# would do the same, but re-enters the compiler on every call from Python).


@nb.njit(cache=True, inline="always")
def _sum(buf, start, end, nmin, nmax, tokens, case, max_bytes, mask, w, fr, hs):
    """(sum of w over the item's feature occurrences, their count). case: a byte map (ASCII lowercasing or
    identity, see ``fast_args``). Scratch: fr, max_bytes + 2 bytes; hs, nmax + 1 uint32. The n-grams are
    walked by their last byte: hs[n] holds the hash of the n-gram of length n ending at the previous byte, so
    the next byte extends every length at once (independent multiplies)."""
    L = end - start
    if L > max_bytes:
        L = max_bytes
    F = L + 2
    fr[0] = 2
    for j in range(L):
        fr[j + 1] = case[buf[start + j]]
    fr[L + 1] = 3
    hs[0] = FNV_OFFSET
    total = 0.0
    k = 0
    j = 0
    while j < F and j < nmax - 1:  # the first bytes end fewer than nmax n-grams
        c = np.uint32(fr[j])
        for n in range(j + 1, 0, -1):
            h = (hs[n - 1] ^ c) * FNV_PRIME
            hs[n] = h
            if n >= nmin:
                total += w[h & mask]
                k += 1
        j += 1
    if j < F:
        k += (F - j) * (nmax - nmin + 1)
    while j < F:
        c = np.uint32(fr[j])
        s = 0.0
        for n in range(nmax, 0, -1):
            h = (hs[n - 1] ^ c) * FNV_PRIME
            hs[n] = h
            if n >= nmin:
                s += w[h & mask]
        total += s
        j += 1
    if tokens:
        h0 = (FNV_OFFSET ^ np.uint32(1)) * FNV_PRIME
        h = h0
        inword = False
        for j in range(1, L + 1):
            c = fr[j]
            if _is_word(c):
                h = (h ^ np.uint32(c)) * FNV_PRIME
                inword = True
            elif inword:
                total += w[h & mask]
                k += 1
                h = h0
                inword = False
        if inword:
            total += w[h & mask]
            k += 1
    return total, k


@nb.njit(cache=True, inline="always")
def _prob(total, k, b0):
    """P(positive) from the summed column, as the two-class softmax of the logits computes it."""
    z = b0 + total * (1.0 / np.sqrt(k) if k > 0 else 0.0)
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (e + 1.0)


@nb.njit(cache=True, nogil=True)
def _binary(buf, starts, ends, nmin_t, nmax_t, tokens, case, max_bytes, mask, w, b0, out):
    nmin, nmax = nmin_t.ndim, nmax_t.ndim
    fr = np.empty(max_bytes + 2, dtype=np.uint8)
    hs = np.empty(nmax + 1, dtype=np.uint32)
    for d in range(starts.shape[0]):
        total, k = _sum(buf, starts[d], ends[d], nmin, nmax, tokens, case, max_bytes, mask, w, fr, hs)
        out[d] = _prob(total, k, b0)


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
    buf, starts, ends = spans(texts)
    out = np.empty(len(starts), dtype=np.float64)
    _binary(buf, starts, ends, *fast_args(cfg), w, float(b0), out)
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

    buf, offsets = pack(texts)
    idx, data, indptr = _csr(buf, offsets, *kernel_args(cfg))
    X = sp.csr_matrix((data, idx, indptr), shape=(len(offsets) - 1, 1 << cfg["dim_bits"]))
    X.sum_duplicates()
    return X


def logits(buf: np.ndarray, offsets: np.ndarray, cfg: dict, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((len(offsets) - 1, W.shape[1]), dtype=np.float64)
    _score(buf, offsets, *kernel_args(cfg), W, b, out)
    return out
