"""How well `smallworld label`'s answers rank a labelled set: ROC AUC (with a bootstrap 90% interval) and TPR at 1%
FPR of the positive class, for the answer it writes (``probs``), the calibrated teacher (``teacher``) and the raw
answer (``raw``).

    .venv/bin/smallworld label --task cmdlines --labelled seed500.jsonl bench/handwritten/endpoint.jsonl --out L.jsonl
    .venv/bin/python bench/label_eval.py --labels L.jsonl --truth bench/handwritten/endpoint.jsonl --positive malicious

Rows the teacher could not answer are left out of ``label``'s output and counted here.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", nargs="+", required=True, help="label outputs (JSONL), one row per run")
    ap.add_argument("--truth", required=True)
    ap.add_argument("--positive", required=True)
    a = ap.parse_args()
    truth = {r["id"]: r["label"] == a.positive for r in D.read_rows(a.truth)}
    print("| labels | answered | field | ROC AUC (90% interval) | TPR at 1% FPR |\n|---|---|---|---|---|")
    for path in a.labels:
        got = [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]
        got = [g for g in got if g["id"] in truth]
        y = np.array([truth[g["id"]] for g in got], dtype=int)
        for field in ("probs", "teacher", "raw"):
            s = np.array([g[field][a.positive] for g in got])
            m = E.binary_metrics(y, s)
            lo, hi = E.bootstrap_interval(y, s)
            print(f"| {path} | {len(got)}/{len(truth)} | {field} | {m['roc_auc']:.3f} ({lo:.3f}–{hi:.3f}) | "
                  f"{m['tpr_at_fpr']['0.01']:.3f} |")


if __name__ == "__main__":
    main()
