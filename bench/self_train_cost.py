"""What `smallworld label`'s self-trained student costs beside the teacher it accompanies: seconds per item of
``pipeline.self_trained_student`` (10 linear fits, near-duplicate clustering) on N pool items, against the
embedded teacher's seconds per item measured in the same run on live calls (a fresh cache, the task's default
prompt, seed demonstrations where the prompt has any). The teacher answers are random here: the worst case for
the students' convergence, and the cost does not depend on what was answered otherwise.

    SMALLWORLD_TEACHER_THREADS=2 .venv/bin/python bench/self_train_cost.py --data ../shared/data --task urls \\
        --n 10000,90000 [--teacher-items 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld.teacher import prompting
from smallworld.pipeline import TrainConfig, self_trained_student, stratified_sample
from smallworld.tasks import load_task
from smallworld.teacher import make_teacher


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--task", default="urls")
    ap.add_argument("--n", default="10000,90000", help="item counts to time the students on")
    ap.add_argument("--teacher-items", type=int, default=20, help="live teacher calls for the peer's speed")
    a = ap.parse_args()
    task = load_task(a.task)
    d = Path(a.data) / a.task
    seed = stratified_sample(list(D.iter_rows(str(d / "train.jsonl.gz"))), 500, 0)
    pool = list(D.iter_rows(str(d / "pool.jsonl.gz")))
    with tempfile.TemporaryDirectory() as tmp:
        teacher = make_teacher("embedded", cache_path=str(Path(tmp) / "cache.sqlite"))
        try:
            demos = prompting.Demonstrations(task, seed, k=3, mode=task.prompt)
            rows = pool[:a.teacher_items]
            prompting.ask_rows(teacher, task, demos, rows[:1], "warm-up", progress=False)  # model load and prefix
            t0 = time.perf_counter()
            prompting.ask_rows(teacher, task, demos, rows[1:], "teacher", progress=False)
            t_teacher = (time.perf_counter() - t0) / max(1, len(rows) - 1)
        finally:
            teacher.close()
    print(f"teacher ({task.prompt} prompt): {t_teacher:.3f} s/item (1x)")
    cfg = TrainConfig(task=a.task, labelled="", out="")
    rng = np.random.default_rng(0)
    for n in (int(x) for x in a.n.split(",")):
        texts = [task.normalise(r["text"]) for r in pool[:n]]
        P = rng.dirichlet(np.ones(len(task.labels)), len(texts))
        t0 = time.perf_counter()
        self_trained_student(task, cfg, seed, texts, P)
        s = time.perf_counter() - t0
        print(f"self-trained student, {len(texts):,} items: {s:.1f} s, {s / len(texts) * 1000:.2f} ms/item "
              f"({s / len(texts) / t_teacher:.3f}x the teacher's time per item)", flush=True)


if __name__ == "__main__":
    main()
