"""Teacher prompt variants: ROC AUC and seconds per item of the embedded teacher, on dev and on a source held
out of the seed (leave-one-source-out), with the seed the pipeline would use.

    SMALLWORLD_TEACHER_THREADS=1 .venv/bin/python bench/prompt_bench.py --data ../shared/data --task cmdlines [--n 120]

Variants: zero-shot (instruction + rubric), fixed (3 examples per class: six for a binary task), similar (3 per
class retrieved per item by character n-gram similarity), hybrid (the default: 3 fixed per class as a cached
prefix + 1 nearest per class), hybrid without the rubric, and an ensemble (mean of the zero, fixed, similar and
hybrid variants run; their agreement is the share of items on which all of them pick the same class). Seconds per item
are from live calls only (cached answers cost nothing), so a rerun keeps the first run's figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld import label as L
from smallworld.pipeline import holdout_split, stratified_sample
from smallworld.tasks import load_task
from smallworld.teacher import make_teacher

HOLDOUT = {"cmdlines": ["lolbas"], "urls": ["phishtank-2020-05"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--task", default="cmdlines")
    ap.add_argument("--n", type=int, default=120, help="items per evaluation set (class-balanced)")
    ap.add_argument("--variants", default="zero,fixed,similar,hybrid,hybrid_norubric")
    ap.add_argument("--out", default="bench/out/prompts")
    a = ap.parse_args()
    task = load_task(a.task)
    d = Path(a.data) / a.task
    labelled = list(D.iter_rows(str(d / "train.jsonl.gz")))
    dev = list(D.iter_rows(str(d / "dev.jsonl.gz")))
    labelled, heldout = holdout_split(task, labelled, dev, HOLDOUT[a.task])
    dev = [r for r in dev if r.get("source") not in HOLDOUT[a.task]]
    seed = stratified_sample(labelled, 500, 0)
    sets = {}
    for name, rows in (("dev", dev), ("heldout", heldout)):
        # the class-balanced sample `train --teacher-eval N` asks about (seed 0), so its answers are reused
        idx = L.balanced_idx(np.array([r["label"] == task.positive for r in rows]), a.n, 2)
        sets[name] = [rows[i] for i in idx]
    teacher = make_teacher("embedded")
    results: dict = {}
    probs: dict = {}
    try:
        for v in a.variants.split(","):
            mode, rubric = (v.replace("_norubric", ""), not v.endswith("_norubric"))
            demos = None if mode == "zero" else L.Demonstrations(task, seed, k=3, mode=mode)
            for name, rows in sets.items():
                before = teacher.usage.to_dict()
                prompts = L.build_prompts(task, [r["text"] for r in rows], demos, rubric=rubric)
                P = L.ask(teacher, task, prompts)
                after = teacher.usage.to_dict()
                calls, secs = after["calls"] - before["calls"], after["seconds"] - before["seconds"]
                ok = ~np.isnan(P).any(axis=1)
                y = np.array([r["label"] == task.positive for r in rows])[ok]
                m = E.binary_metrics(y, P[ok, task.pos_index])
                results.setdefault(v, {})[name] = {"n": int(ok.sum()), "roc_auc": m["roc_auc"],
                                                   "seconds_per_item": secs / calls if calls else None}
                probs[(v, name)] = P
                print(v, name, results[v][name], flush=True)
        members = [v for v in ("fixed", "similar", "hybrid", "zero") if v in results]
        if len(members) >= 2:
            for name, rows in sets.items():
                Ps = np.stack([probs[(v, name)] for v in members])
                ok = ~np.isnan(Ps).any(axis=(0, 2))
                y = np.array([r["label"] == task.positive for r in rows])[ok]
                Pm = Ps[:, ok].mean(axis=0)
                agree = (Ps[:, ok].argmax(axis=2) == Ps[0, ok].argmax(axis=1)).all(axis=0)
                secs = [results[v][name]["seconds_per_item"] for v in members]
                results.setdefault("ensemble", {})[name] = {
                    "n": int(ok.sum()), "roc_auc": E.binary_metrics(y, Pm[:, task.pos_index])["roc_auc"],
                    "seconds_per_item": sum(secs) if all(s is not None for s in secs) else None,
                    "agreement": float(agree.mean()),
                    "roc_auc_where_agree": E.binary_metrics(y[agree], Pm[agree, task.pos_index])["roc_auc"]}
    finally:
        teacher.close()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"prompts_{a.task}.json").write_text(json.dumps(results, indent=2))
    print(f"\n### {a.task}: teacher ROC AUC (n per set) and seconds per item; held out: {', '.join(HOLDOUT[a.task])}\n")
    print("| variant | dev ROC AUC | held-out ROC AUC | s/item (dev) | s/item (held-out) |\n|---|---|---|---|---|")
    for v, r in results.items():
        f = lambda x: "-" if x is None else f"{x:.3f}"
        print(f"| {v} | {f(r['dev']['roc_auc'])} ({r['dev']['n']}) | {f(r['heldout']['roc_auc'])} ({r['heldout']['n']}) | "
              f"{f(r['dev']['seconds_per_item'])} | {f(r['heldout']['seconds_per_item'])} |")
    if "ensemble" in results:
        e = results["ensemble"]
        print(f"\nensemble agreement: dev {e['dev']['agreement']:.2f}, held-out {e['heldout']['agreement']:.2f}")


if __name__ == "__main__":
    main()
