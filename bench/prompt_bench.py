"""Teacher prompt variants and the teacher-with-student combination: ROC AUC and seconds per item of the
embedded teacher, on dev and on a source held out of the seed (leave-one-source-out), with the seed the pipeline
would use (500 rows, stratified, without the held-out source).

    SMALLWORLD_TEACHER_THREADS=2 .venv/bin/python bench/prompt_bench.py --data ../shared/data --task cmdlines \
        --holdout atomic-red-team --variants fixed_norubric,fixed,zero_norubric,zero,hybrid \
        --combine zero,fixed_norubric,ensemble [--n 120]

Variants: zero (instruction + rubric, no examples), fixed (3 examples per class: six for a binary task),
similar (3 per class retrieved per item by character n-gram similarity), hybrid (3 fixed per class as a cached
prefix + 1 nearest per class); a ``_norubric`` suffix drops the task's rubric. The ensemble row averages the
``--ensemble`` variants (default zero,fixed); their agreement is the share of items on which all of them pick
the same class. ``--combine``: for each listed variant, the teacher calibrated on class-balanced seed rows it
answered (``--cal``), and the teacher with a student by both rules of ``label.Combiner``: equal (each calibrated,
log-odds summed; the default) and learned (one logistic regression on all log-odds). Students: the seed-only
one, the self-trained one (the seed plus the teacher's answers for the other items of the set, cross-fitted by
near-duplicate cluster: ``pipeline.self_trained_student``), and both (``smallworld label``'s default).
A reliability plot of the first ``--combine`` variant on the held-out rows is written beside the JSON, and the
rows' probabilities (``heldout_<task>_<source>.npz``, ``dev_...``) for ``bench/loso_gain.py``. Seconds per item are
from live calls only (cached answers cost nothing), so a rerun keeps the first run's figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld import calibrate
from smallworld.teacher import prompting
from smallworld.pipeline import TrainConfig, holdout_split, seed_student, self_trained_student, stratified_sample
from smallworld.tasks import load_task
from smallworld.teacher import make_teacher

HOLDOUT = {"cmdlines": ["lolbas"], "urls": ["phishtank-2020-05"]}


def variant(task, seed, v):
    return prompting.Demonstrations(task, seed, k=3, mode=v.replace("_norubric", ""), rubric=not v.endswith("_norubric"))


def auc(task, rows, P):
    ok = ~np.isnan(P).any(axis=1)
    y = np.array([r["label"] == task.positive for r in rows])[ok]
    return E.binary_metrics(y, P[ok, task.pos_index])


def record(task, results, probs, key, name, rows, P, comb=None, v=None):
    """One row of the results: ROC AUC on a set, the teacher variant's seconds per item, the combiner's numbers."""
    probs[(key, name)] = P
    results.setdefault(key, {})[name] = {
        "n": len(rows), "roc_auc": auc(task, rows, P)["roc_auc"],
        "seconds_per_item": results.get(v, {}).get(name, {}).get("seconds_per_item") if v else None,
        **({"combiner": comb.to_dict()} if comb is not None else {})}
    print(key, name, results[key][name], flush=True)


def teacher_and_student(a, task, seed, sets, teacher, probs, results):
    """The seed-only student; the teacher (each --combine variant) calibrated on balanced seed rows; and the
    teacher with the seed-only and with the self-trained student by both rules of label.Combiner (fitted on the
    teacher's answers for the calibration rows and the student's group-out-of-fold probabilities for them)."""
    K = len(task.labels)
    cfg = TrainConfig(task=task.name, labelled="", out="")
    student, cv = seed_student(task, cfg, seed)
    Pst = {name: student.predict_proba([task.normalise(r["text"]) for r in rows]) for name, rows in sets.items()}
    for name, rows in sets.items():
        record(task, results, probs, "student (seed-only)", name, rows, Pst[name])
    cal_rows = calibrate.calibration_rows(prompting.Demonstrations(task, seed, k=3, mode="fixed"), seed, a.cal, 1)
    y_cal = np.array([task.labels.index(r["label"]) for r in cal_rows])
    S_cal = np.array([cv[r["id"]] for r in cal_rows])
    members = [v for v in a.ensemble.split(",") if (v, "dev") in probs]
    Pcal: dict = {}
    for v in a.combine.split(","):
        for m in (members if v == "ensemble" else [v]):
            if m not in Pcal:
                Pcal[m] = prompting.ask(teacher, task, prompting.build_prompts(task, [r["text"] for r in cal_rows], variant(task, seed, m),
                                                              exclude_ids=[r["id"] for r in cal_rows]))
        Pc = np.mean([Pcal[m] for m in members], axis=0) if v == "ensemble" else Pcal[v]
        cal = calibrate.Calibrator(K).fit(Pc, y_cal)
        # the two rules of label.Combiner: equal (each calibrated on the seed, log-odds summed; the default) and
        # learned (one logistic regression on all log-odds), with the seed-only student, with the self-trained one
        # (the seed plus the teacher's answers for the other items, cross-fitted), and with both (label's default)
        combs = {rule: calibrate.Combiner(K, rule).fit(Pc, S_cal, y_cal) for rule in calibrate.Combiner.RULES}
        for name, rows in sets.items():
            P = probs[(v, name)]
            probs[(f"{v} calibrated", name)] = cal.transform(P)
            ok = ~np.isnan(P).any(axis=1)
            Pself = np.full_like(P, np.nan)
            t0 = time.perf_counter()
            Pself[ok], cv_self = self_trained_student(task, cfg, seed, [task.normalise(r["text"]) for r, k in zip(rows, ok) if k], P[ok])
            S_self = np.array([cv_self[r["id"]] for r in cal_rows])
            print(f"self-trained student ({v}, {name}): {time.perf_counter() - t0:.1f} s for {int(ok.sum())} items", flush=True)
            record(task, results, probs, f"self-trained student ({v})", name, rows, Pself)
            for rule in calibrate.Combiner.RULES:
                tail = "" if rule == "equal" else f" ({rule})"
                record(task, results, probs, f"{v} + seed student{tail}", name, rows, combs[rule].transform(P, Pst[name]),
                       combs[rule], v)
                comb = calibrate.Combiner(K, rule).fit(Pc, S_self, y_cal)
                record(task, results, probs, f"{v} + self-trained student{tail}", name, rows, comb.transform(P, Pself),
                       comb, v)
                comb = calibrate.Combiner(K, rule).fit(Pc, [S_cal, S_self], y_cal)  # label's default (equal)
                record(task, results, probs, f"{v} + both students{tail}", name, rows,
                       comb.transform(P, [Pst[name], Pself]), comb, v)
    reliability(a, task, sets, probs, [f"{v}" for v in a.combine.split(",")][:1])


def reliability(a, task, sets, probs, variants):
    """Expected calibration error and a reliability plot on the held-out rows: raw, calibrated, with student."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sets["heldout"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ":", color="grey")
    y = np.array([r["label"] == task.positive for r in rows], dtype=float)
    for v in variants:
        for key in (v, f"{v} calibrated", f"{v} + both students"):
            P = probs[(key, "heldout")]
            ok = ~np.isnan(P).any(axis=1)
            p = P[ok, task.pos_index]
            edges = np.linspace(0, 1, 11)
            idx = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
            xs = [p[idx == b].mean() for b in range(10) if (idx == b).any()]
            ys = [y[ok][idx == b].mean() for b in range(10) if (idx == b).any()]
            e = E.ece(y[ok], p)
            ax.plot(xs, ys, "o-", label=f"{key} (ECE {e:.3f})")
            print(f"ECE held-out {key}: {e:.3f}")
    ax.set_xlabel("predicted P(positive)")
    ax.set_ylabel("observed share positive")
    ax.set_title(f"{task.name}: held out {', '.join(HOLDOUT[task.name])}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(a.out) / f"reliability_{task.name}_{'+'.join(HOLDOUT[task.name])}.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--task", default="cmdlines")
    ap.add_argument("--n", type=int, default=120, help="items per evaluation set (class-balanced)")
    ap.add_argument("--variants", default="zero,fixed,similar,hybrid,hybrid_norubric")
    ap.add_argument("--holdout", default=None, help="source held out of the seed (default: lolbas / phishtank-2020-05)")
    ap.add_argument("--combine", default="", help="teacher variants to combine with the seed-only student "
                    "(ensemble = the mean of the variants run), e.g. fixed_norubric,fixed,ensemble")
    ap.add_argument("--ensemble", default="zero,fixed", help="variants the ensemble row averages (those run)")
    ap.add_argument("--cal", type=int, default=120, help="seed rows the teacher answers to fit calibration and weights")
    ap.add_argument("--eval", default=None, help="a labelled file to judge on instead of a held-out source (e.g. "
                    "bench/handwritten/cmdlines.jsonl): the seed then comes from all of train, and every row is asked")
    ap.add_argument("--out", default="bench/out/prompts")
    a = ap.parse_args()
    task = load_task(a.task)
    if a.holdout:
        HOLDOUT[a.task] = a.holdout.split(",")
    d = Path(a.data) / a.task
    labelled = list(D.iter_rows(str(d / "train.jsonl.gz")))
    dev = list(D.iter_rows(str(d / "dev.jsonl.gz")))
    if a.eval:
        heldout = list(D.iter_rows(a.eval))
        HOLDOUT[a.task] = [Path(a.eval).name]
    else:
        labelled, heldout = holdout_split(task, labelled, dev, HOLDOUT[a.task])
        dev = [r for r in dev if r.get("source") not in HOLDOUT[a.task]]
    seed = stratified_sample(labelled, 500, 0)
    sets = {}
    for name, rows in (("dev", dev), ("heldout", heldout)):
        if a.eval and name == "heldout":
            sets[name] = rows
            continue
        # the class-balanced sample `train --teacher-eval N` asks about (seed 0), so its answers are reused
        idx = calibrate.balanced_idx(np.array([r["label"] == task.positive for r in rows]), a.n, 2)
        sets[name] = [rows[i] for i in idx]
    teacher = make_teacher("embedded")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    results: dict = {}
    probs: dict = {}
    try:
        for v in a.variants.split(","):
            demos = variant(task, seed, v)
            for name, rows in sets.items():
                before = teacher.usage.to_dict()
                prompts = prompting.build_prompts(task, [r["text"] for r in rows], demos)
                P = prompting.ask(teacher, task, prompts)
                after = teacher.usage.to_dict()
                calls, secs = after["calls"] - before["calls"], after["seconds"] - before["seconds"]
                ok = ~np.isnan(P).any(axis=1)
                y = np.array([r["label"] == task.positive for r in rows])[ok]
                m = E.binary_metrics(y, P[ok, task.pos_index])
                results.setdefault(v, {})[name] = {"n": int(ok.sum()), "roc_auc": m["roc_auc"],
                                                   "seconds_per_item": secs / calls if calls else None}
                probs[(v, name)] = P
                print(v, name, results[v][name], flush=True)
        members = [v for v in a.ensemble.split(",") if v in results]
        if len(members) >= 2:
            for name, rows in sets.items():
                Ps = np.stack([probs[(v, name)] for v in members])
                ok = ~np.isnan(Ps).any(axis=(0, 2))
                y = np.array([r["label"] == task.positive for r in rows])[ok]
                Pm = Ps[:, ok].mean(axis=0)
                probs[("ensemble", name)] = Ps.mean(axis=0)
                agree = (Ps[:, ok].argmax(axis=2) == Ps[0, ok].argmax(axis=1)).all(axis=0)
                secs = [results[v][name]["seconds_per_item"] for v in members]
                results.setdefault("ensemble", {})[name] = {
                    "n": int(ok.sum()), "roc_auc": E.binary_metrics(y, Pm[:, task.pos_index])["roc_auc"],
                    "seconds_per_item": sum(secs) if all(s is not None for s in secs) else None,
                    "agreement": float(agree.mean()),
                    "roc_auc_where_agree": E.binary_metrics(y[agree], Pm[agree, task.pos_index])["roc_auc"]}
        if a.combine:
            teacher_and_student(a, task, seed, sets, teacher, probs, results)
    finally:
        teacher.close()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    stem = f"{a.task}_{'+'.join(HOLDOUT[a.task])}"
    (Path(a.out) / f"prompts_{stem}.json").write_text(json.dumps(results, indent=2))
    # per-row P(positive) on each set, for bench/loso_gain.py (paired bootstrap across splits)
    for set_name, rows in sets.items():
        np.savez_compressed(Path(a.out) / f"{set_name}_{stem}.npz", y=np.array([r["label"] == task.positive for r in rows]),
                            ids=np.array([r["id"] for r in rows]),
                            **{k: P[:, task.pos_index] for (k, name), P in probs.items() if name == set_name})
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
