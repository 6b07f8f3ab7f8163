"""Streaming scoring with a saved student: constant memory, any input size, batched through the numba kernel."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np

from .. import data as D
from ..student import features, modelfile
from ..tasks import Task


class Scorer:
    """A loaded model: ``scores(texts)`` gives P(positive); ``probs(texts)`` every class."""

    def __init__(self, model_dir: str | Path):
        self.model, self.header = modelfile.load(model_dir)
        t = self.header.get("task")
        self.task = Task.from_dict(t) if isinstance(t, dict) else None
        self.labels = tuple(self.header["labels"])
        pos = (self.task.positive if self.task else self.labels[0])
        self.pos = self.labels.index(pos)
        self.thresholds = self.header.get("thresholds") or {"best_guess": 0.5, "high_confidence": 0.9}

    def _norm(self, texts: Iterable[str]) -> list[str]:
        return [self.task.normalise(t) for t in texts] if self.task and self.task.normaliser != "none" else list(texts)

    def probs(self, texts) -> np.ndarray:
        return self.model.predict_proba(self._norm(texts))

    def scores(self, texts) -> np.ndarray:
        return self.probs(texts)[:, self.pos]


def batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_stream(scorer: Scorer, rows: Iterator[dict], out: TextIO, mode: str = "best_guess",
                 batch_size: int = 8192, all_probs: bool = False) -> int:
    thr = float(scorer.thresholds.get(mode, 0.5))
    n = 0
    for batch in batches(rows, batch_size):
        P = scorer.probs([r["text"] for r in batch])
        s = P[:, scorer.pos]
        lines = []
        for r, p, full in zip(batch, s, P):
            rec = {"id": r["id"], "score": round(float(p), 6), "decision": scorer.labels[scorer.pos] if p >= thr else
                   _other(scorer, full)}
            if all_probs:
                rec["probs"] = {lab: round(float(x), 6) for lab, x in zip(scorer.labels, full)}
            lines.append(json.dumps(rec, ensure_ascii=False))
        out.write("\n".join(lines) + "\n")
        n += len(batch)
    out.flush()
    return n


def _other(scorer: Scorer, full: np.ndarray) -> str:
    q = full.copy()
    q[scorer.pos] = -1
    return scorer.labels[int(np.argmax(q))]
