"""Does synthetic data cover what the seed lacks? Students trained on a 500-row seed with and without the
synthetic rows, each thresholded at 1% FPR on dev (its own threshold), measured where the seed has nothing.

    .venv/bin/python bench/synth_proof.py --data ../shared/data \\
        --cmdlines-synth bench/out/synth/cmdlines_synth.jsonl \\
        --emails-synth bench/out/synth/emails_modern_ham_train.jsonl \\
        --emails-ham-test bench/out/synth/emails_modern_ham_test.jsonl \\
        --emails-phish-test bench/out/synth/emails_ai_phishing_test.jsonl

* cmdlines: the synthetic rows were generated for ATT&CK techniques that appear in dev but nowhere in train
  (train, dev and pool are split by technique), so the seed cannot know them; reported: recall on dev rows of
  those techniques, dev ROC AUC, dev FPR.
* emails: all legitimate mail in the data is from 1999-2005; synthetic modern business mail (three taxonomy
  entries) is added to training, and the false-positive rate is measured on modern mail of three *other*
  entries, generated separately and never trained on; AI-written phishing (generated, never trained on) gives
  the detection rate and the ROC AUC of AI-written phishing against modern legitimate mail.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld.pipeline import onehot, stratified_sample
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task


def fit(task, rows):
    return LinearStudent(task.labels, dict(task.features)).fit(
        [task.normalise(r["text"]) for r in rows], onehot(task, [r["label"] for r in rows]),
        np.array([float(r.get("weight", 1.0)) for r in rows]))


def pos_scores(task, m, rows):
    return m.predict_proba([task.normalise(r["text"]) for r in rows])[:, task.pos_index] if rows else np.zeros(0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seed-size", type=int, default=500)
    ap.add_argument("--cmdlines-synth", nargs="*", default=[])
    ap.add_argument("--emails-synth", nargs="*", default=[])
    ap.add_argument("--emails-ham-test")
    ap.add_argument("--emails-phish-test")
    a = ap.parse_args()
    data = Path(a.data)
    if a.cmdlines_synth:
        task = load_task("cmdlines")
        seed = stratified_sample(list(D.iter_rows(str(data / "cmdlines" / "train.jsonl.gz"))), a.seed_size, 0)
        dev = list(D.iter_rows(str(data / "cmdlines" / "dev.jsonl.gz")))
        syn = [r for p in a.cmdlines_synth for r in D.iter_rows(p)]
        techs = sorted({r["meta"]["taxonomy"] for r in syn if r["label"] == "malicious"})
        held = [r for r in dev if r["label"] == "malicious" and any(str((r.get("meta") or {}).get("technique", "")).startswith(t) for t in techs)]
        y = np.array([r["label"] == task.positive for r in dev])
        print(f"\n### cmdlines: {len(syn)} synthetic rows for {', '.join(techs)}; {len(held)} dev rows of those techniques\n")
        print("| training | dev ROC AUC | threshold (1% dev FPR) | recall on unseen techniques | dev recall |\n|---|---|---|---|---|")
        for name, rows in (("seed (500)", seed), (f"seed + {len(syn)} synthetic", seed + syn)):
            m = fit(task, rows)
            s = pos_scores(task, m, dev)
            thr = E.threshold_at_fpr(y.astype(int), s, 0.01)
            rec = float((pos_scores(task, m, held) >= thr).mean()) if held else float("nan")
            print(f"| {name} | {E.binary_metrics(y, s)['roc_auc']:.4f} | {thr:.3f} | {rec:.3f} | {float((s[y] >= thr).mean()):.3f} |")
    if a.emails_synth or a.emails_ham_test:
        task = load_task("emails")
        seed = stratified_sample(list(D.iter_rows(str(data / "emails" / "train.jsonl.gz"))), a.seed_size, 0)
        dev = list(D.iter_rows(str(data / "emails" / "dev.jsonl.gz")))
        syn = [r for p in a.emails_synth for r in D.iter_rows(p)]
        ham = list(D.iter_rows(a.emails_ham_test)) if a.emails_ham_test else []
        phish = list(D.iter_rows(a.emails_phish_test)) if a.emails_phish_test else []
        y = np.array([r["label"] == task.positive for r in dev])
        print(f"\n### emails: {len(syn)} synthetic modern ham rows in training; tests: {len(ham)} modern ham "
              f"(other entries), {len(phish)} AI-written phishing\n")
        print("| training | dev ROC AUC | threshold (1% dev FPR) | FPR on modern ham | detection of AI-written phishing | "
              "ROC AUC AI phishing vs modern ham |\n|---|---|---|---|---|---|")
        for name, rows in (("seed (500)", seed), (f"seed + {len(syn)} synthetic", seed + syn)):
            m = fit(task, rows)
            s = pos_scores(task, m, dev)
            thr = E.threshold_at_fpr(y.astype(int), s, 0.01)
            sh, sp = pos_scores(task, m, ham), pos_scores(task, m, phish)
            auc = E.binary_metrics(np.r_[np.zeros(len(sh)), np.ones(len(sp))], np.r_[sh, sp])["roc_auc"] if len(sh) and len(sp) else None
            print(f"| {name} | {E.binary_metrics(y, s)['roc_auc']:.4f} | {thr:.3f} | "
                  f"{float((sh >= thr).mean()) if len(sh) else float('nan'):.3f} | "
                  f"{float((sp >= thr).mean()) if len(sp) else float('nan'):.3f} | {'-' if auc is None else f'{auc:.3f}'} |")


if __name__ == "__main__":
    main()
