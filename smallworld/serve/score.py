"""Streaming scoring with a saved student: constant memory, any input size, batched through the numba kernels.

Two-class models score through a single weight column (:func:`smallworld.student.features.binary_probs`).
Plain-lines input (a file, or stdin that is not JSON Lines) scored with such a model takes a faster path:
blocks of whole lines go through one kernel that splits the lines, scores them and writes the JSONL output
bytes, with no Python per item. Its output is the general path's: the same ids (line numbers), blank lines
skipped, scores written as ``json.dumps(round(p, 6))`` writes them, the same decisions; blocks with anything
unusual (NUL bytes, invalid UTF-8, overlong lines) go through the general path line by line.
"""

from __future__ import annotations

import codecs
import json
import os
from typing import Iterable, Iterator, TextIO

import numba as nb
import numpy as np

from .. import data as D
from ..student import features
from ..student.model import Model


def batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_stream(scorer: Model, rows: Iterator[dict], out: TextIO, mode: str = "best_guess",
                 batch_size: int = 8192, all_probs: bool = False) -> int:
    thr = float(scorer.thresholds.get(mode, 0.5))
    if (isinstance(rows, D.LineRows) and scorer.binary is not None and not all_probs
            and scorer.raw_text and rows.bulk_ok()):
        n = _score_line_blocks(scorer, rows, out, thr, batch_size)
    else:
        n = _score_rows(scorer, rows, out, thr, batch_size, all_probs)
    out.flush()
    return n


def _score_rows(scorer: Model, rows: Iterable[dict], out: TextIO, thr: float, batch_size: int,
                all_probs: bool) -> int:
    n = 0
    for batch in batches(rows, batch_size):
        texts = [r["text"] for r in batch]
        if all_probs or scorer.binary is None:
            P = scorer.predict_proba(texts)
            s = P[:, scorer.pos]
        else:
            s, P = scorer.scores(texts), None
        lines = []
        for i, (r, p) in enumerate(zip(batch, s)):
            decision = (scorer.labels[scorer.pos] if p >= thr else
                        scorer.labels[1 - scorer.pos] if P is None else scorer.other(P[i]))
            rec = {"id": r["id"], "score": round(float(p), 6), "decision": decision}
            if all_probs:
                rec["probs"] = {lab: round(float(x), 6) for lab, x in zip(scorer.labels, P[i])}
            lines.append(json.dumps(rec, ensure_ascii=False))
        out.write("\n".join(lines) + "\n")
        n += len(batch)
    return n


# -- plain lines, in bulk -------------------------------------------------------------------------------------
def _score_line_blocks(scorer: Model, src: D.LineRows, out: TextIO, thr: float, batch_size: int) -> int:
    cfg = scorer.model.feature_config
    w, b0 = scorer.binary
    # each row ends with ', "decision": LABEL}\n'
    yes, no = (np.frombuffer(b', "decision": ' + json.dumps(lab, ensure_ascii=False).encode() + b"}\n", dtype=np.uint8)
               for lab in (scorer.labels[scorer.pos], scorer.labels[1 - scorer.pos]))
    write = _bytes_writer(out)
    jsonl = np.empty(0, dtype=np.uint8)  # reused: fresh pages cost more than the formatting
    n = 0
    for first, block in src.blocks():
        buf = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        if len(buf) and buf[-1] != 10:
            ends = np.append(ends, len(buf))
        need = len(ends) * (_ROW_BYTES + max(len(yes), len(no)))
        if len(jsonl) < need:
            jsonl = np.empty(need + need // 4, dtype=np.uint8)
        size, rows = _jsonl_rows(buf, ends, first, *features.fast_args(cfg), w, b0, thr, yes, no, D.MAX_LINE_BYTES,
                                 jsonl)
        if size >= 0:
            write(jsonl[:size])
            src.stats.rows += rows
            n += rows
        else:  # something to refuse or skip: the reader's own rules, line by line
            n += _score_rows(scorer, src.block_rows(first, block), out, thr, batch_size, False)
    return n


def _bytes_writer(out: TextIO):
    """Write UTF-8 bytes to a text stream: straight to its binary buffer when that is the same thing."""
    raw = getattr(out, "buffer", None)
    enc = getattr(out, "encoding", None)
    if raw is not None and enc and codecs.lookup(enc).name == "utf-8" and os.linesep == "\n":
        def write(a: np.ndarray):
            out.flush()
            raw.write(a.data)
    else:
        def write(a: np.ndarray):
            out.write(a.tobytes().decode("utf-8"))
    return write


_ID = np.frombuffer(b'{"id": "', dtype=np.uint8)
_SCORE = np.frombuffer(b'", "score": ', dtype=np.uint8)
_ROW_BYTES = 48  # a row's bytes before its ending (yes or no): 8 + id (<= 20) + 12 + score (<= 8)


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
def _jsonl_rows(buf, ends, first, nmin_t, nmax_t, tokens, case, max_bytes, mask, w, b0, thr, yes, no, max_line,
                out):
    """Score the lines of buf (ends: index of each line's newline, or len(buf) for a last line without one;
    line i is number first + i) and write their JSONL rows into out (room for _ROW_BYTES + max(len(yes),
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
            total, k = features._sum(buf, start, e, nmin, nmax, tokens, case, max_bytes, mask, w, fr, hs)
            p = features._prob(total, k, b0)
            o = _put(out, o, _ID)
            o = _put_int(out, o, first + i)
            o = _put(out, o, _SCORE)
            o = _put_score(out, o, p)
            o = _put(out, o, yes if p >= thr else no)
            rows += 1
        start = end + 1
    return o, rows
