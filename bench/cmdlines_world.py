"""Command lines judged where they will be used: the hand-written set (``bench/handwritten/cmdlines.jsonl``,
attacks and everyday commands written for this project, never trained or tuned on) beside dev.

    .venv/bin/python bench/cmdlines_world.py --data ../shared/data [--model runs/demo ...] [--probe]
        [--handwritten bench/handwritten/endpoint.jsonl --handwritten bench/handwritten/endpoint_b.jsonl]

* **views**: the seed-only student (500 stratified train rows, several seeds) on the raw text (``normaliser
  none``, what the task used before) and on the task's view (``tasks/cmdline.py``: placeholders and volatile
  parts replaced, behaviour words added): ROC AUC and TPR at 1% FPR on the hand-written set, ROC AUC on dev.
* **--model DIR**: a saved model (``train``'s output, ``make demo``'s ``runs/demo``) on the same sets, with
  stratified bootstrap 90% intervals (``evaluate.bootstrap_interval``) of ROC AUC and TPR at 1% FPR.
* **--handwritten FILE** (repeatable): the sets judged; each is reported, and with several so is their union
  (``all``). The two endpoint collections are written apart and reported apart, as #20 reports its two.
* **--probe**: single-feature probes. For each corpus shortcut (documentation placeholders) and each behaviour
  word, how often it occurs per source and label, and its ROC AUC as a one-feature classifier on train and on
  the hand-written set: a feature whose direction flips between them is a source artefact.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld.pipeline import onehot, stratified_sample
from smallworld.student.linear import LinearStudent
from smallworld.tasks import cmdline, load_task

HANDWRITTEN = Path(__file__).parent / "handwritten" / "cmdlines.jsonl"
SHORTCUTS = {  # documentation conventions, as they are written in the corpora
    "path/to": re.compile(r"path[\\/]to[\\/]", re.I),
    "<placeholder>": re.compile(r"<[^<>\s]{1,60}>"),
    "{PLACEHOLDER}": re.compile(r"\{[A-Z][A-Z_:]{2,40}\}|\{\{[^{}]+\}\}"),
    "[-a|--alt]": re.compile(r"\[-{1,2}[\w-]+\|"),
    "example.com": re.compile(r"example\.(com|org|net)", re.I),
    "attacker": re.compile(r"attacker|evil", re.I),
    "PowerShell $": re.compile(r"\$[A-Za-z_{(]"),
    "uppercase": re.compile(r"[A-Z]"),
}


def metrics(task, model, rows):
    y = np.array([r["label"] == task.positive for r in rows])
    p = model.predict_proba([task.normalise(r["text"]) for r in rows])[:, task.pos_index]
    m = E.binary_metrics(y, p)
    return {"roc_auc": round(m["roc_auc"], 4), "tpr_at_1pct_fpr": round(m["tpr_at_fpr"]["0.01"], 4)}


def views(args, train, dev, hands):
    task = load_task("cmdlines")
    out = {}
    for name, t in (("raw text (normaliser none)", replace(task, normaliser="none")),
                    ("the command-line view (normaliser cmdline)", replace(task, normaliser="cmdline"))):
        rs = []
        for s in args.seeds:
            seed = stratified_sample(train, args.seed_size, s)
            m = LinearStudent(t.labels, dict(t.features)).fit(
                [t.normalise(r["text"]) for r in seed], onehot(t, [r["label"] for r in seed]))
            rs.append({**{h: metrics(t, m, rows) for h, rows in hands.items()},
                       "dev_roc_auc": metrics(t, m, dev)["roc_auc"]})
        out[name] = {**{f"{h}_{k}": [r[h][k] for r in rs] for h in hands for k in ("roc_auc", "tpr_at_1pct_fpr")},
                     "dev_roc_auc": [r["dev_roc_auc"] for r in rs]}
        print(name, json.dumps(out[name]), flush=True)
    return out


def one_feature_auc(rows, has, positive):
    y = np.array([r["label"] == positive for r in rows])
    x = np.array([has(r["text"]) for r in rows], dtype=float)
    return E.binary_metrics(y, x)["roc_auc"] if 0 < y.sum() < len(y) else float("nan")


def probe(train, hand, telemetry):
    feats = {k: (lambda t, rx=rx: bool(rx.search(t))) for k, rx in SHORTCUTS.items()}
    words = sorted({w for r in train + hand for w in cmdline.behaviour(r["text"]) if not w.startswith("swfprog")})
    cache = {id(r): set(cmdline.behaviour(r["text"])) for r in train + hand + telemetry}
    for w in words:
        feats[w] = (lambda t, w=w, _c={r["text"]: cache[id(r)] for r in train + hand + telemetry}: w in _c[t])
    groups = {}
    for r in train:
        groups.setdefault(f"{r['source']}/{r['label']}", []).append(r)
    for r in hand:
        groups.setdefault(f"handwritten/{r['label']}", []).append(r)
    groups["telemetry/unlabelled"] = telemetry
    table = {}
    for name, has in feats.items():
        table[name] = {"rate": {g: round(float(np.mean([has(r["text"]) for r in rs])), 3) for g, rs in groups.items()},
                       "auc_train": round(one_feature_auc(train, has, "malicious"), 3),
                       "auc_handwritten": round(one_feature_auc(hand, has, "malicious"), 3)}
        print(f"{name:18s} train {table[name]['auc_train']:.3f}  handwritten {table[name]['auc_handwritten']:.3f}  "
              + "  ".join(f"{g}={v}" for g, v in table[name]["rate"].items()), flush=True)
    return table


def saved_models(args, dev, hands):
    from smallworld.student.model import Model

    out = {}
    for d in args.model:
        sc = Model(d)
        res = {}
        for name, rows in (*hands.items(), ("dev", dev)):
            y = np.array([r["label"] == sc.task.positive for r in rows])
            s = sc.scores([sc.item(r) for r in rows])  # the event too, for a model whose task shows it
            m = E.binary_metrics(y, s)
            res[name] = {"roc_auc": round(m["roc_auc"], 4), "tpr_at_1pct_fpr": round(m["tpr_at_fpr"]["0.01"], 4)}
            if name != "dev":
                res[name]["roc_auc_90"] = [round(v, 3) for v in E.bootstrap_interval(y, s)]
                res[name]["tpr_at_1pct_fpr_90"] = [round(v, 3) for v in E.bootstrap_interval(
                    y, s, stat=lambda yy, ss: E.tpr_at_fpr(yy, ss, 0.01))]
        out[d] = res
        print(d, json.dumps(res), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seed-size", type=int, default=500)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--model", action="append", default=[], help="a saved model directory (repeatable)")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--no-views", action="store_true")
    ap.add_argument("--out", default="bench/out/cmdlines_world.json")
    ap.add_argument("--handwritten", action="append", default=[],
                    help="a hand-written set (repeatable; default bench/handwritten/cmdlines.jsonl; endpoint.jsonl and "
                         "endpoint_b.jsonl: command lines as endpoints log them); with several, each is reported and "
                         "so is their union")
    args = ap.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    d = Path(args.data) / "cmdlines"
    train, dev = D.read_rows(d / "train.jsonl.gz"), D.read_rows(d / "dev.jsonl.gz")
    hands = {Path(p).stem: D.read_rows(p) for p in args.handwritten or [HANDWRITTEN]}
    if len(hands) > 1:
        hands["all"] = [r for rows in list(hands.values()) for r in rows]
    res = {"handwritten": {h: {"n": len(rows), "malicious": sum(r["label"] == "malicious" for r in rows)}
                           for h, rows in hands.items()}}
    if not args.no_views:
        res["views"] = views(args, train, dev, hands)
    if args.probe:
        res["probe"] = probe(train, hands["all" if "all" in hands else next(iter(hands))], D.read_rows(d / "telemetry.jsonl.gz"))
    if args.model:
        res["models"] = saved_models(args, dev, hands)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
