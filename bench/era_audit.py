"""The era shortcut in `emails`: what does the student rely on, and what counters it?

    .venv/bin/python bench/era_audit.py --data ../shared/data \\
        [--synthetic bench/out/synth/emails_modern_ham_train.jsonl] \\
        [--ham-test bench/out/synth/emails_modern_ham_test.jsonl] [--phish-test bench/out/synth/emails_ai_phishing_test.jsonl]

1. Audit: a student trained on a 500-row seed; per-feature contributions (smallworld explain) summed over 400
   dev rows of each class: the features that push legitimate mail away from "phishing" and phishing toward it.
2. Counters, each measured on dev and on modern mail (generated, never trained on): masking years and long
   numbers (dates, times and ids carry the era), synthetic modern legitimate mail in training, and both.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld.pipeline import onehot, stratified_sample
from smallworld.student.explain import explain
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task

_NUM = re.compile(r"\b(19|20)\d\d\b|\b\d{3,}\b")


def mask_numbers(text: str) -> str:
    return _NUM.sub("0", text)


def fit(task, rows, pre=lambda t: t):
    return LinearStudent(task.labels, dict(task.features)).fit(
        [task.normalise(pre(r["text"])) for r in rows], onehot(task, [r["label"] for r in rows]),
        np.array([float(r.get("weight", 1.0)) for r in rows]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--synthetic", nargs="*", default=[])
    ap.add_argument("--ham-test")
    ap.add_argument("--phish-test")
    a = ap.parse_args()
    task = load_task("emails")
    data = Path(a.data) / "emails"
    seed = stratified_sample(list(D.iter_rows(str(data / "train.jsonl.gz"))), 500, 0)
    dev = list(D.iter_rows(str(data / "dev.jsonl.gz")))
    m = fit(task, seed)
    rng = np.random.default_rng(0)
    print("## What the student relies on (sum of contributions to the phishing margin over 400 dev rows)\n")
    for lab, sign, what in (("ham", -1, "pushing legitimate (Enron-era) mail away from phishing"),
                            ("phishing", 1, "pushing phishing toward phishing")):
        rows = [r for r in dev if r["label"] == lab]
        tot: dict[str, float] = defaultdict(float)
        for i in rng.choice(len(rows), min(400, len(rows)), replace=False):
            e = explain(m, task.normalise(rows[i]["text"]), task.pos_index, top=10_000)
            for k, v in e["top_abs"]:
                tot[k] += v
        top = sorted(tot.items(), key=lambda kv: sign * kv[1], reverse=True)[:15]
        print(f"{what}: " + ", ".join(f"{k} ({v:+.1f})" for k, v in top) + "\n")
    syn = [r for p in a.synthetic for r in D.iter_rows(p)]
    ham = list(D.iter_rows(a.ham_test)) if a.ham_test else []
    phish = list(D.iter_rows(a.phish_test)) if a.phish_test else []
    print(f"## Counters ({len(syn)} synthetic modern ham in training; tests: {len(ham)} modern ham, "
          f"{len(phish)} AI-written phishing, generated and never trained on)\n")
    print("| variant | dev ROC AUC | FPR on modern ham at 1% dev FPR | AI phishing detected | ROC AUC AI phishing vs modern ham |")
    print("|---|---|---|---|---|")
    y = np.array([r["label"] == task.positive for r in dev])
    for name, rows, pre in (("seed (500)", seed, lambda t: t), ("mask years and long numbers", seed, mask_numbers),
                            (f"+ {len(syn)} synthetic modern ham", seed + syn, lambda t: t),
                            ("both", seed + syn, mask_numbers)):
        mm = fit(task, rows, pre)
        sc = lambda rs: mm.predict_proba([task.normalise(pre(r["text"])) for r in rs])[:, task.pos_index] if rs else np.zeros(0)
        s = sc(dev)
        thr = E.threshold_at_fpr(y.astype(int), s, 0.01)
        sh, sp = sc(ham), sc(phish)
        auc = E.binary_metrics(np.r_[np.zeros(len(sh)), np.ones(len(sp))], np.r_[sh, sp])["roc_auc"] if len(sh) and len(sp) else None
        print(f"| {name} | {E.binary_metrics(y, s)['roc_auc']:.4f} | {(sh >= thr).mean() if len(sh) else float('nan'):.3f} | "
              f"{(sp >= thr).mean() if len(sp) else float('nan'):.3f} | {'-' if auc is None else f'{auc:.3f}'} |")


if __name__ == "__main__":
    main()
