"""Selection over a 100,000-row pool: seconds and peak memory per strategy.

    .venv/bin/python bench/select_bench.py --data ../shared/data [--rows 100000] [--budget 1000]

Pool: `urls` pool + telemetry rows (unlabelled), a student trained on a 500-row seed. Peak memory is the
growth of the process's peak RSS during each selection (ru_maxrss), measured in a fresh subprocess each.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time


def run_one(data: str, rows: int, budget: int, strategy: str) -> dict:
    import numpy as np

    from smallworld import selection
    from smallworld.student.linear import LinearStudent
    from smallworld.tasks import load_task

    task = load_task("urls")
    pool = []
    for name in ("telemetry", "pool"):
        with gzip.open(os.path.join(data, "urls", f"{name}.jsonl.gz"), "rt") as f:
            for line in f:
                r = json.loads(line)
                pool.append({"id": r["id"], "text": r["text"]})
                if len(pool) >= rows:
                    break
    with gzip.open(os.path.join(data, "urls", "train.jsonl.gz"), "rt") as f:
        seed = [json.loads(x) for _, x in zip(range(500), f)]
    m = LinearStudent(task.labels, task.features).fit(
        [r["text"] for r in seed], np.array([[r["label"] == lab for lab in task.labels] for r in seed], float))
    selection.select(strategy, pool[:200], 10, student=m, feature_cfg=task.features)  # JIT warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    sel = selection.select(strategy, pool, budget, student=m, feature_cfg=task.features,
                   known_texts=[r["text"] for r in seed])
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"strategy": strategy, "rows": len(pool), "budget": budget, "asked": len(sel.ask),
            "inherited": sum(len(v) for v in sel.members.values()), "seconds": round(dt, 2),
            "peak_rss_growth_mb": round((after - before) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--strategy", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.strategy:
        print(json.dumps(run_one(a.data, a.rows, a.budget, a.strategy)))
        return
    from smallworld.selection import STRATEGIES

    print("| strategy | rows | budget | asked | inherited | seconds | peak RSS growth (MB) |\n|---|---|---|---|---|---|---|")
    for s in STRATEGIES:
        out = subprocess.run([sys.executable, __file__, "--data", a.data, "--rows", str(a.rows), "--budget",
                              str(a.budget), "--strategy", s], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {s} | {r['rows']} | {r['budget']} | {r['asked']} | {r['inherited']} | {r['seconds']} | {r['peak_rss_growth_mb']} |")


if __name__ == "__main__":
    main()
