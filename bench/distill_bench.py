"""The three-row comparison (teacher, seed-only student, distilled student) at a 500-row seed and a teacher
budget of 1,500 telemetry rows, evaluated on dev and on sources held out of training.

    .venv/bin/python bench/distill_bench.py --data ../shared/data [--tasks cmdlines,urls] [--budget 1500]

Uses the embedded teacher (answers cached in ~/.cache/smallworld, so a rerun costs seconds). Writes
bench/out/distill_<task>/ (model, manifest) and prints the tables; also reports teacher throughput.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from smallworld.pipeline import TrainConfig, comparison_table, train

HOLDOUT = {"cmdlines": ["lolbas"], "urls": ["phishtank-2020-05", "iscx-url2016-benign"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--tasks", default="cmdlines,urls")
    ap.add_argument("--budget", type=int, default=1500)
    ap.add_argument("--seed-size", type=int, default=500)
    ap.add_argument("--teacher-eval", type=int, default=120)
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--holdout", default=None, help="comma-separated sources to hold out (one task only)")
    a = ap.parse_args()
    summary = {}
    for task in a.tasks.split(","):
        d = Path(a.data) / task
        holdout = a.holdout.split(",") if a.holdout else HOLDOUT[task]
        out = Path(a.out) / (f"distill_{task}" + (f"_{'_'.join(holdout)}" if a.holdout else ""))
        t0 = time.perf_counter()
        m = train(TrainConfig(task=task, labelled=str(d / "train.jsonl.gz"), dev=str(d / "dev.jsonl.gz"),
                              unlabelled=[str(d / "telemetry.jsonl.gz")], out=str(out), teacher=a.teacher,
                              budget=a.budget, seed_size=a.seed_size, holdout_sources=holdout,
                              teacher_eval=a.teacher_eval)).manifest
        u = m["teacher"].get("usage", {})
        summary[task] = {"metrics": {k: {r: v[r].get("roc_auc") for r in ("teacher", "seed_only", "distilled") if r in v}
                                     for k, v in m["metrics"].items()},
                         "tpr_at_1e-3": {k: {r: v[r]["tpr_at_fpr"].get("0.001") for r in ("teacher", "seed_only", "distilled")
                                             if r in v} for k, v in m["metrics"].items()},
                         "teacher_usage": u, "wall_seconds": round(time.perf_counter() - t0, 1)}
        print(f"\n## {task} (seed {a.seed_size}, budget {a.budget}, held out: {', '.join(holdout)})")
        print(comparison_table(m.manifest))
        if u.get("calls"):
            print(f"teacher: {u['calls']} calls in {u['seconds']:.0f} s = {u['calls'] / u['seconds']:.2f} items/s; "
                  f"{u['cache_hits']} cache hits")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"distill_bench_{'_'.join(a.tasks.split(','))}{'_' + a.holdout if a.holdout else ''}.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
