"""AI-written phishing against modern legitimate mail, for trained `emails` models (seed-only and distilled).

    .venv/bin/python bench/ai_phishing_bench.py --data ../shared/data --handwritten bench/handwritten/emails.jsonl \
        --models runs/emails300/seed_only runs/emails300

``bench/handwritten/emails.jsonl``: 61 phishing and 100 legitimate modern messages written by hand for this
project (not by the teacher or any model here), in many styles and four languages, the legitimate ones the
phishing's look-alikes (real password-change notices, invoices, shipping, sign-in alerts, shared files); never
trained or tuned on. The first 60 legitimate ones (``source = "handwritten-mail"``) carry no link while 46 of the
61 phishing do, a shortcut a link-counting model could take; the 40 added in the seventeenth session
(``"handwritten-mail-linked"``) are notifications, receipts, resets and shares with links to the senders' own
domains (``github.com``, ``www.dropbox.com``, ``brightlane.sharepoint.com``, ``www.deutsche-bank.de`` ...). The
table gives the ROC AUC against all 100 and against each source's legitimate mail. ``emails_b.jsonl`` (50 phishing
and their 50 legitimate twins on the same themes, written later) is the set to score a choice made on the first.
The older generated sets (below) are a secondary row only:

    .venv/bin/python bench/ai_phishing_bench.py --data ../shared/data \\
        --phish bench/out/synth/emails_ai_phishing_test*.jsonl --ham bench/out/synth/emails_modern_ham_test*.jsonl \\
        --models bench/out/emails_300/seed_only bench/out/emails_three_row bench/out/emails_300

Both test sets are written by the embedded teacher (`smallworld synth ... --no-verify`, kept apart from training:
the modern legitimate mail comes from three taxonomy entries never used for training). Reported per model: ROC
AUC of AI-written phishing against modern legitimate mail, the detection rate and the modern-mail false-positive
rate at the threshold giving 1% FPR on dev (phishing against spam and ham), and dev ROC AUC. Rows are
de-duplicated by text across the files. A bootstrap 90% interval (1,000 resamples) goes with the test AUC,
because the sets are small.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld.student.model import Model


def rows_of(paths):
    seen, out = set(), []
    for p in paths:
        for r in D.iter_rows(p):
            if r["text"] not in seen:
                seen.add(r["text"])
                out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--phish", nargs="+", default=[])
    ap.add_argument("--ham", nargs="+", default=[])
    ap.add_argument("--handwritten", help="one labelled file (bench/handwritten/emails.jsonl): phishing rows against "
                                          "the others")
    ap.add_argument("--models", nargs="+", required=True)
    a = ap.parse_args()
    phish, ham = rows_of(a.phish), rows_of(a.ham)
    if a.handwritten:
        hw = rows_of([a.handwritten])
        phish += [r for r in hw if r["label"] == "phishing"]
        ham += [r for r in hw if r["label"] != "phishing"]
    if not phish or not ham:
        ap.error("give --handwritten, or --phish and --ham")
    dev = list(D.iter_rows(str(Path(a.data) / "emails" / "dev.jsonl.gz")))
    print(f"\n{len(phish)} AI-written phishing, {len(ham)} modern legitimate mails; dev {len(dev)} rows\n")
    srcs = sorted({r.get("source", "") for r in ham})
    per = srcs if len(srcs) > 1 else []  # a ROC AUC against each source's legitimate mail too
    masks = [np.array([r.get("source", "") == src for r in ham]) for src in per]
    print("| model | dev ROC AUC | AI phishing vs modern mail ROC AUC (90% interval) | detected at 1% dev FPR | "
          "modern mail flagged |" + "".join(f" vs {src} ({int(k.sum())}) |" for src, k in zip(per, masks))
          + "\n|---|---|---|---|---|" + "---|" * len(per))
    for m in a.models:
        sc = Model(m)
        sd = sc.predict_proba([r["text"] for r in dev])[:, sc.pos]
        yd = np.array([r["label"] == sc.labels[sc.pos] for r in dev]).astype(int)
        thr = E.threshold_at_fpr(yd, sd, 0.01)
        sp = sc.predict_proba([r["text"] for r in phish])[:, sc.pos]
        sh = sc.predict_proba([r["text"] for r in ham])[:, sc.pos]
        auc = _auc(sp, sh)
        lo, hi = E.bootstrap_interval(np.r_[np.ones(len(sp)), np.zeros(len(sh))], np.r_[sp, sh])
        print(f"| {m} | {E.binary_metrics(yd, sd)['roc_auc']:.3f} | **{auc:.3f}** ({lo:.3f}–{hi:.3f}) | "
              f"{float((sp >= thr).mean()):.3f} | {float((sh >= thr).mean()):.3f} |" + "".join(
                  f" {_auc(sp, sh[mask]):.3f} |" for mask in masks))


def _auc(sp, sh) -> float:
    return E.binary_metrics(np.r_[np.ones(len(sp)), np.zeros(len(sh))], np.r_[sp, sh])["roc_auc"]


if __name__ == "__main__":
    main()
