"""The bulk plain-lines kernel: split a block of lines, score them and write the JSONL output bytes, with no
Python per item (numba; imported only for blocks of 64 KiB and more). Its output is the general path's, byte
for byte (tests/test_fast_scoring.py)."""

from __future__ import annotations

import numba as nb
import numpy as np

from ..student import kernels

_ID = np.frombuffer(b'{"id": "', dtype=np.uint8)
_SCORE = np.frombuffer(b'", "score": ', dtype=np.uint8)


@nb.njit(cache=True, inline="always")
def _put(out, o, src):
    for j in range(src.shape[0]):
        out[o + j] = src[j]
    return o + src.shape[0]


@nb.njit(cache=True, inline="always")
def _put_int(out, o, v):
    n = 1
    t = v
    while t >= 10:
        t //= 10
        n += 1
    for j in range(n - 1, -1, -1):
        out[o + j] = 48 + v % 10
        v //= 10
    return o + n


@nb.njit(cache=True)
def _micros(p):
    """round(p, 6) * 10**6 as an integer, for 0 <= p <= 1, rounded as Python's round(p, 6) (the exact
    binary value, ties to even)."""
    y = p * 1e6
    k = np.floor(y)
    f = y - k  # exact
    if abs(f - 0.5) > 1e-6:
        return int(k) + (1 if f > 0.5 else 0)
    # near a tie, decide exactly: p = hi + lo with 26-bit halves, so hi * 1e6 and lo * 1e6 are exact, and
    # hi * 1e6 - (k + 0.5) is exact (Sterbenz); the sign of a rounded sum is the sign of the exact sum
    t = p * 134217729.0
    hi = t - (t - p)
    lo = p - hi
    d = (hi * 1e6 - (k + 0.5)) + lo * 1e6
    if d > 0.0:
        return int(k) + 1
    if d < 0.0:
        return int(k)
    return int(k) + (int(k) & 1)


@nb.njit(cache=True, inline="always")
def _put_score(out, o, p):
    """Write round(p, 6) as Python's float repr does (json.dumps): 0.0, 0.5, 0.000123, 1.2e-05, 1e-06, 1.0."""
    k = _micros(p)
    if k == 0 or k >= 1000000:
        out[o] = 49 if k else 48
        out[o + 1] = 46
        out[o + 2] = 48
        return o + 3
    if k >= 100:
        out[o] = 48
        out[o + 1] = 46
        last = 6
        while k % 10 == 0:
            k //= 10
            last -= 1
        for j in range(last, 0, -1):
            out[o + 1 + j] = 48 + k % 10
            k //= 10
        return o + 2 + last
    if k >= 10 and k % 10:
        out[o] = 48 + k // 10
        out[o + 1] = 46
        out[o + 2] = 48 + k % 10
        o += 3
        exp = 5
    else:
        out[o] = 48 + (k // 10 if k >= 10 else k)
        o += 1
        exp = 5 if k >= 10 else 6
    out[o] = 101  # e-0
    out[o + 1] = 45
    out[o + 2] = 48
    out[o + 3] = 48 + exp
    return o + 4


@nb.njit(cache=True, inline="always")
def _blank(buf, s, e):
    """Whether the (valid UTF-8) line is empty or whitespace only, as Python's str.strip() sees it."""
    j = s
    while j < e:
        c = buf[j]
        if c < 128:
            if c == 32 or (c >= 9 and c <= 13) or (c >= 28 and c <= 31):
                j += 1
                continue
            return False
        if c < 0xE0:
            cp = ((np.int64(c) & 0x1F) << 6) | (np.int64(buf[j + 1]) & 0x3F)
            j += 2
        elif c < 0xF0:
            cp = ((np.int64(c) & 0x0F) << 12) | ((np.int64(buf[j + 1]) & 0x3F) << 6) | (np.int64(buf[j + 2]) & 0x3F)
            j += 3
        else:
            return False  # no whitespace beyond the Basic Multilingual Plane
        if not (cp == 0x85 or cp == 0xA0 or cp == 0x1680 or (cp >= 0x2000 and cp <= 0x200A) or cp == 0x2028
                or cp == 0x2029 or cp == 0x202F or cp == 0x205F or cp == 0x3000):
            return False
    return True


@nb.njit(cache=True, inline="always")
def _utf8(buf, s, e):
    """Whether buf[s:e] is UTF-8 as Python's strict decoder takes it (no overlongs, surrogates, > U+10FFFF)."""
    i = s
    while i < e:
        c = buf[i]
        if c < 128:
            i += 1
            continue
        if c >= 0xC2 and c <= 0xDF:
            need = 1
        elif c >= 0xE0 and c <= 0xEF:
            need = 2
        elif c >= 0xF0 and c <= 0xF4:
            need = 3
        else:
            return False
        if i + need >= e:
            return False
        c1 = buf[i + 1]
        if ((c1 & 0xC0) != 0x80 or (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 >= 0xA0)
                or (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 >= 0x90)):
            return False
        for j in range(2, need + 1):
            if (buf[i + j] & 0xC0) != 0x80:
                return False
        i += need + 1
    return True


@nb.njit(cache=True)
def jsonl_rows(buf, ends, first, nmin_t, nmax_t, tokens, case, max_bytes, mask, w, b0, thr, yes, no, max_line,
                out):
    """Score the lines of buf (ends: index of each line's newline, or len(buf) for a last line without one;
    line i is number first + i) and write their JSONL rows into out (room for score.ROW_BYTES + max(len(yes),
    len(no)) per line), ending each with yes (score >= thr) or no. Returns (bytes written, rows written), or
    (-1, 0) if a line has NUL bytes or invalid UTF-8 or is longer than max_line with its newline."""
    nmin, nmax = nmin_t.ndim, nmax_t.ndim
    fr = np.empty(max_bytes + 2, dtype=np.uint8)
    hs = np.empty(nmax + 1, dtype=np.uint32)
    o = 0
    rows = 0
    start = 0
    for i in range(ends.shape[0]):
        end = ends[i]
        if end - start + (1 if end < buf.shape[0] else 0) > max_line:
            return -1, 0
        hi = 0
        lo = 255
        for j in range(start, end):
            hi |= buf[j]
            lo = min(lo, buf[j])
        if lo == 0 or (hi >= 128 and not _utf8(buf, start, end)):
            return -1, 0
        e = end
        while e > start and buf[e - 1] == 13:
            e -= 1
        if not _blank(buf, start, e):
            total, k = kernels._sum(buf, start, e, nmin, nmax, tokens, case, max_bytes, mask, w, fr, hs)
            p = kernels._prob(total, k, b0)
            o = _put(out, o, _ID)
            o = _put_int(out, o, first + i)
            o = _put(out, o, _SCORE)
            o = _put_score(out, o, p)
            o = _put(out, o, yes if p >= thr else no)
            rows += 1
        start = end + 1
    return o, rows
