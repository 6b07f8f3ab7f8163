"""The analyst loop: export a ranked queue of items worth a human look; import the analyst's decisions.

``export`` ranks, from a run folder: given labels a confident teacher contradicts (``disagreements.jsonl``,
reason ``label_contradicted``), teacher-labelled rows where the student picks another label
(``teacher_student_disagree``), and rows the student is least sure of (``low_confidence``: teacher-labelled
rows, plus any ``--unlabelled`` file). Each appears once, under its strongest reason. The queue is CSV or
JSONL with columns id, text, reason, teacher_probs, student_probs, given_label, choices and an empty
``decision``.

``import`` reads the analyst's decisions (label names; blank = skip) and writes labelled rows with a high
``weight``; list the file last under ``[data] labelled`` (or pass it to ``train --labelled`` in place of the
seed, concatenated) and its rows replace any earlier row with the same text.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from . import data as D
from .errors import SmallworldError
from .report import disagreement_rows, load_manifest, prob_rows, resolve_run
from .student.model import Model

COLUMNS = ("id", "text", "reason", "teacher_probs", "student_probs", "given_label", "choices", "decision")
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")  # a spreadsheet would run a cell starting like this


def _kind(path: str) -> str:
    p = path.lower()
    if p.endswith(".csv"):
        return "csv"
    if p.endswith(".jsonl"):
        return "jsonl"
    raise SmallworldError(f"{path}: a review queue is a .csv or a .jsonl file")


def _cell(s: str) -> str:
    """A CSV cell that a spreadsheet shows as text (undone by :func:`_uncell`)."""
    return "'" + s if s.startswith(_FORMULA) else s


def _uncell(s: str) -> str:
    return s[1:] if s.startswith("'") and s[1:].startswith(_FORMULA) else s


def _probs(labels, p) -> dict | None:
    if p is None:
        return None
    return {lab: round(float(v), 4) for lab, v in zip(labels, p)}


def _margin(p: np.ndarray) -> np.ndarray:
    s = np.sort(p, axis=1)
    return s[:, -1] - s[:, -2]


def build_queue(run_dir: str | Path, n: int = 50, unlabelled: list[str] = (), on_error: str = "raise") -> list[dict]:
    model_dir = resolve_run(run_dir)
    manifest = load_manifest(model_dir)
    sc = Model(model_dir)
    labels = sc.labels
    items: dict[str, dict] = {}  # by text: the strongest reason wins

    def add(row_id, text, reason, priority, teacher, student, given):
        old = items.get(text)
        if old is None or priority > old["_priority"]:
            items[text] = {"id": str(row_id), "text": text, "reason": reason, "teacher_probs": _probs(labels, teacher),
                           "student_probs": _probs(labels, student), "given_label": given or "",
                           "choices": "|".join(labels), "decision": "", "_priority": priority}

    dis = disagreement_rows(model_dir)
    if dis:
        S = sc.predict_proba([d["text"] for d in dis])
        for d, s in zip(dis, S):
            tp = d.get("probs") if isinstance(d.get("probs"), list) and len(d["probs"]) == len(labels) else None
            add(d.get("id"), d["text"], "label_contradicted", 3.0 + (max(tp) if tp else 0.0), tp, s, d.get("label"))
    tl = model_dir / "teacher_labels.jsonl"
    if tl.is_file():
        key = "raw" if manifest["config"].get("targets", "raw") == "raw" else "probs"
        rows = prob_rows(tl, key, len(labels))
        if rows:
            T = np.array([r[key] for r in rows], dtype=float)
            S = sc.predict_proba([r["text"] for r in rows])
            M = _margin(S)
            for r, t, s, m in zip(rows, T, S, M):
                if t.argmax() != s.argmax():
                    add(r.get("id"), r["text"], "teacher_student_disagree", 2.0 + float(np.abs(t - s).max()), t, s, "")
                else:
                    add(r.get("id"), r["text"], "low_confidence", 1.0 - float(m), t, s, "")
    for path in unlabelled:
        rows = D.read_rows(path, on_error=on_error)
        if rows:
            S = sc.predict_proba([r["text"] for r in rows])
            for r, s, m in zip(rows, S, _margin(S)):
                add(r["id"], r["text"], "low_confidence", 1.0 - float(m), None, s, r.get("label"))
    out = sorted(items.values(), key=lambda x: (-x["_priority"], x["id"]))[:n]
    for x in out:
        x["priority"] = round(x.pop("_priority"), 4)
    return out


def _fmt_probs(p: dict | None) -> str:
    return "" if p is None else " ".join(f"{k}={v:.3f}" for k, v in p.items())


def export(run_dir: str | Path, out: str, n: int = 50, unlabelled: list[str] = (), on_error: str = "raise") -> int:
    kind = _kind(out)
    q = build_queue(run_dir, n, unlabelled, on_error)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        D.write_jsonl(out, ({k: x[k] for k in COLUMNS} for x in q))
    else:
        with open(out, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for x in q:
                w.writerow([_cell(x["id"]), _cell(x["text"]), x["reason"], _fmt_probs(x["teacher_probs"]),
                            _fmt_probs(x["student_probs"]), _cell(x["given_label"]), x["choices"], ""])
    return len(q)


def _read_queue(path: str) -> list[tuple[int, dict]]:
    kind = _kind(path)
    if not Path(path).is_file():
        raise SmallworldError(f"{path}: no such file")
    rows: list[tuple[int, dict]] = []
    try:
        if kind == "csv":
            with open(path, encoding="utf-8-sig", newline="") as f:
                r = csv.DictReader(f)
                missing = [c for c in ("id", "text", "choices", "decision") if c not in (r.fieldnames or [])]
                if missing:
                    raise SmallworldError(f"{path}: no {', '.join(repr(c) for c in missing)} column "
                                          f"(is this a queue written by `smallworld review export`?)")
                for i, row in enumerate(r, start=2):
                    rows.append((i, {k: _uncell(v or "") if k in ("id", "text", "given_label") else (v or "")
                                     for k, v in row.items() if k is not None}))
        else:
            for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    o = json.loads(line)
                except ValueError as e:
                    raise SmallworldError(f"{path}: line {i}: not JSON: {e}") from None
                if not isinstance(o, dict) or not isinstance(o.get("text"), str):
                    raise SmallworldError(f"{path}: line {i}: expected an object with 'text'")
                rows.append((i, {k: ("" if o.get(k) is None else o.get(k)) for k in COLUMNS}))
    except UnicodeDecodeError as e:
        raise SmallworldError(f"{path}: not UTF-8 text: {e}") from None
    except csv.Error as e:
        raise SmallworldError(f"{path}: malformed CSV: {e}") from None
    return rows


def import_decisions(queue: str, out: str, weight: float = 5.0) -> dict:
    """Write the analyst's decisions as labelled rows with `weight`; returns counts."""
    if not weight > 0:
        raise SmallworldError("--weight must be a positive number")
    rows = _read_queue(queue)
    where = "row" if _kind(queue) == "csv" else "line"
    choices: tuple[str, ...] | None = None
    out_rows, skipped, counts = [], 0, {}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i, r in rows:
        ch = tuple(c for c in str(r.get("choices", "")).split("|") if c)
        if not ch:
            raise SmallworldError(f"{queue}: {where} {i}: empty 'choices' (the task's labels)")
        if choices is None:
            choices = ch
        elif ch != choices:
            raise SmallworldError(f"{queue}: {where} {i}: choices {list(ch)} differ from earlier rows' {list(choices)}")
        dec = str(r.get("decision", "")).strip()
        if not dec:
            skipped += 1
            continue
        match = [c for c in choices if c.lower() == dec.lower()]
        if not match:
            raise SmallworldError(f"{queue}: {where} {i} (id {r.get('id')}): decision {dec!r} is not one of this "
                                  f"task's labels: {', '.join(choices)} (leave it blank to skip the row)")
        lab = match[0]
        counts[lab] = counts.get(lab, 0) + 1
        out_rows.append({"id": str(r.get("id") or f"review-{i}"), "text": r["text"], "label": lab, "weight": weight,
                         "meta": {"review": {"reason": r.get("reason", ""), "given_label": r.get("given_label", ""),
                                             "imported": stamp}}})
    D.write_jsonl(out, out_rows)
    return {"written": len(out_rows), "skipped": skipped, "labels": counts}
