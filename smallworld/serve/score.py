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

import numpy as np

from .. import data as D
from ..student import features
from ..student.model import Model


SMALL_BLOCK = 1 << 16  # blocks of plain lines smaller than this are scored without the bulk kernel


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
    thr = scorer.threshold(mode)
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
        texts = [scorer.item(r) for r in batch]
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
            if "event" in r:  # an endpoint log's event: its id, time, host, user, image and parent, kept
                rec["event"] = r["event"]
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
    jsonl_rows = None
    for first, block in src.blocks():
        if len(block) < SMALL_BLOCK:  # a few lines: no kernel to load (what a one-line `score` would pay)
            n += _score_rows(scorer, src.block_rows(first, block), out, thr, batch_size, False)
            continue
        jsonl_rows = jsonl_rows or bulk_kernel(cfg, w)
        buf = np.frombuffer(block, dtype=np.uint8)
        while True:
            size, rows = jsonl_rows(buf, first, w, b0, thr, yes, no, D.MAX_LINE_BYTES, jsonl)
            if size != -2:
                break
            jsonl = np.empty(rows + rows // 4, dtype=np.uint8)  # rows: the room it needs
        if size >= 0:
            write(jsonl[:size])
            src.stats.rows += rows
            n += rows
        else:  # something to refuse or skip: the reader's own rules, line by line
            n += _score_rows(scorer, src.block_rows(first, block), out, thr, batch_size, False)
    return n


ROW_BYTES = 48  # a row's bytes before its ending (yes or no): 8 + id (<= 20) + 12 + score (<= 8)
BULK_KERNELS = ("c", "numba")  # SMALLWORLD_BULK selects one (tests compare them); default: c where it was built


def bulk_kernel(cfg: dict, w: np.ndarray):
    """``jsonl_rows(buf, first, w, b0, thr, yes, no, max_line, out) -> (size, rows)`` for a block of whole lines:
    the compiled C kernel (:mod:`._cbulk`, built with the package) where it is there, else the numba one
    (:mod:`.bulk`); the same bytes either way. ``(-2, n)``: ``out`` needs ``n`` bytes; ``(-1, 0)``: read the
    block line by line."""
    choice = os.environ.get("SMALLWORLD_BULK", "")
    if choice not in ("", *BULK_KERNELS):
        raise ValueError(f"SMALLWORLD_BULK must be one of {', '.join(BULK_KERNELS)}, not {choice!r}")
    if choice != "numba":
        try:
            from ._cbulk import jsonl_rows as c_rows
        except ImportError:
            if choice == "c":
                raise
        else:
            nmin, nmax, tokens, lower, max_bytes, mask = features.kernel_args(cfg)
            none = np.zeros(0, dtype=np.int64)
            wc = np.ascontiguousarray(w)

            def run(buf, first, w, b0, thr, yes, no, max_line, out):
                return c_rows(buf, none, first, nmin, nmax, int(tokens), int(lower), max_bytes, int(mask), wc,
                              wc.dtype == np.float64, b0, thr, yes, no, max_line, out)
            return run
    from .bulk import jsonl_rows as nb_rows

    args = features.fast_args(cfg)

    def run_numba(buf, first, w, b0, thr, yes, no, max_line, out):
        ends = np.flatnonzero(buf == 10)
        if len(buf) and buf[-1] != 10:
            ends = np.append(ends, len(buf))
        need = len(ends) * (ROW_BYTES + max(len(yes), len(no)))
        if len(out) < need:
            return -2, need
        return nb_rows(buf, ends, first, *args, w, b0, thr, yes, no, max_line, out)
    return run_numba


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
