"""The feature hash as machine code (numba, compiled once and cached on disk): what training, bulk scoring and
large batches run. :mod:`smallworld.student.features` defines the features and holds the reference
implementation (:func:`~smallworld.student.features.reference_features`, numpy); every kernel here is tested
against it bit for bit (``tests/test_features_reference.py``). Importing this module loads numba (about
0.15 s, and each kernel's cache on first use), which is why small inputs never import it.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .features import FNV_OFFSET, FNV_PRIME


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
