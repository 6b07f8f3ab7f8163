"""The two student families on the same distillation data: hashed n-gram linear vs character CNN (ONNX).

Run from the repository root:

    .venv/bin/python bench/cnn_bench.py --data ../shared/data

For each task (``urls``: ``phishtank-2020-05`` held out; ``cmdlines``: ``lolbas`` held out, as in
:func:`smallworld.pipeline.holdout_split`):

* **seed**: a stratified 500-row sample of the train split without the held-out source (one-hot targets).
* **soft labels**: without ``--run``, a *stand-in teacher*, NOT the LLM: a linear student trained on a
  stratified 2,000-row labelled sample of the same train split (one-hot targets); its probabilities on
  ``--pool-rows`` rows of the task's unlabelled ``pool.jsonl.gz`` (held-out source excluded) are the soft
  targets. With ``--run DIR`` (a ``smallworld train`` output directory) the soft labels are the real teacher's
  raw probabilities from ``DIR/teacher_labels.jsonl`` and the seed, task and held-out sources come from
  ``DIR/manifest.json``; only that run's task is benchmarked.
* **students**: both trained by :func:`smallworld.pipeline.fit_distilled` (the pipeline's own code; seed rows
  weight 1, soft rows weight 1), ``--student linear`` and ``--student cnn``, then saved as model directories.
* **measured**: dev ROC AUC (dev without the held-out source), ROC AUC on the held-out source (its rows plus
  benign dev rows from other sources), training seconds, model size (bytes of the directory), single-item
  latency (median of 1,000 calls of ``Model.scores([text])``) and batch throughput (best of ``--repeats``
  passes of ``Model.scores(list)`` over ``--score-rows`` dev texts), both through the normal loader: the
  linear model through its numba kernel, the CNN through onnxruntime with ``intra_op_num_threads=1``.
  One core: torch, numba, OpenMP and BLAS threads are pinned to 1. The CNN is trained with ``--cnn-seeds``
  seeds (default 3; its AUCs as mean ± sd, population sd); the linear student is deterministic.

Results go to ``bench/out/cnn_bench.json``; a Markdown table is printed.
"""

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smallworld import data as D  # noqa: E402
from smallworld import pipeline as PL  # noqa: E402
from smallworld.evaluate import binary_metrics  # noqa: E402
from smallworld.student.model import Model  # noqa: E402
from smallworld.student import modelfile  # noqa: E402
from smallworld.student.linear import LinearStudent  # noqa: E402
from smallworld.tasks import load_task  # noqa: E402
from student_bench import best_throughput  # noqa: E402  (bench/ is on sys.path when run as a script)

OUT = ROOT / "bench" / "out" / "cnn_bench.json"
HOLDOUT = {"urls": ["phishtank-2020-05"], "cmdlines": ["lolbas"]}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def median_latency_us(fn, texts, calls=1000, warm=50):
    for i in range(warm):
        fn([texts[i % len(texts)]])
    times = []
    for i in range(calls):
        t = texts[i % len(texts)]
        t0 = time.perf_counter_ns()
        fn([t])
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def auc(task, rows, s) -> float:
    return binary_metrics(np.array([r["label"] == task.positive for r in rows]), s)["roc_auc"]


def soft_data(args, task_name: str):
    """(task, seed rows, soft texts, soft probabilities, dev rows, held-out rows, description, held-out sources)."""
    if args.run:
        man = json.loads((Path(args.run) / "manifest.json").read_text())
        c = man["config"]
        task = load_task(c["task"])
        labelled = [r for r in D.read_rows(c["labelled"]) if "label" in r]
        dev = [r for r in D.read_rows(c["dev"]) if "label" in r] if c.get("dev") else []
        hold = c.get("holdout_sources") or []
        heldout = []
        if hold:
            labelled, heldout = PL.holdout_split(task, labelled, dev, hold)
            dev = [r for r in dev if r.get("source") not in set(hold)]
        seed = PL.stratified_sample(labelled, c["seed_size"], c["seed"]) if c.get("seed_size") else labelled
        with open(Path(args.run) / "teacher_labels.jsonl", encoding="utf-8") as f:  # rows with "raw" probs
            tl = [json.loads(line) for line in f if line.strip()]
        texts = [task.normalise(r["text"]) for r in tl]
        P = np.array([r["raw"] for r in tl], dtype=float)
        return task, seed, texts, P, dev, heldout, f"teacher_labels.jsonl of {args.run} ({len(tl)} rows, raw)", hold
    task = load_task(task_name)
    d = Path(args.data) / task_name
    train = D.read_rows(d / "train.jsonl.gz")
    dev = D.read_rows(d / "dev.jsonl.gz")
    train, heldout = PL.holdout_split(task, train, dev, HOLDOUT[task_name])
    dev = [r for r in dev if r.get("source") not in set(HOLDOUT[task_name])]
    seed = PL.stratified_sample(train, args.seed_size, 0)
    teach_rows = PL.stratified_sample(train, args.teacher_rows, 1)
    teacher = LinearStudent(task.labels, dict(task.features)).fit(
        [task.normalise(r["text"]) for r in teach_rows], PL.onehot(task, [r["label"] for r in teach_rows]))
    pool = [r for r in D.iter_rows(d / "pool.jsonl.gz") if r.get("source") not in set(HOLDOUT[task_name])]
    rng = np.random.default_rng(2)
    pool = [pool[i] for i in sorted(rng.choice(len(pool), size=min(args.pool_rows, len(pool)), replace=False))]
    texts = [task.normalise(r["text"]) for r in pool]
    P = teacher.predict_proba(texts)
    desc = (f"stand-in teacher (linear student on {len(teach_rows)} labelled train rows; not the LLM) "
            f"on {len(pool)} pool rows")
    return task, seed, texts, P, dev, heldout, desc, HOLDOUT[task_name]


def run_task(args, task_name: str, tmp: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    task, seed, texts, P, dev, heldout, desc, hold = soft_data(args, task_name)
    print(f"{task.name}: seed {len(seed)}, soft rows {len(texts)} from {desc}; dev {len(dev)}, "
          f"held-out {len(heldout)}", file=sys.stderr)
    seed_texts = [task.normalise(r["text"]) for r in seed]
    Y = PL.onehot(task, [r["label"] for r in seed])
    dev_t = [r["text"] for r in dev]
    ho_t = [r["text"] for r in heldout]
    score_texts = (dev_t * (args.score_rows // max(1, len(dev_t)) + 1))[: args.score_rows]
    res = {"task": task.name, "soft_labels": desc, "seed_rows": len(seed), "soft_rows": len(texts),
           "dev_n": len(dev), "heldout_n": len(heldout), "heldout_sources": hold, "students": {}}
    for family in ("linear", "cnn"):
        cfg = PL.TrainConfig(task=task.name, labelled="", out="", student=family)
        extra = []  # more CNN training seeds: the spread of its AUCs
        for s in range(1, args.cnn_seeds if family == "cnn" else 1):
            cs = PL.TrainConfig(task=task.name, labelled="", out="", student=family, seed=s)
            ms = PL.fit_distilled(task, cs, seed_texts, Y, np.ones(len(seed)), texts, P, np.ones(len(texts)))
            extra.append((auc(task, dev, ms.predict_proba(dev_t)[:, task.pos_index]),
                          auc(task, heldout, ms.predict_proba(ho_t)[:, task.pos_index]) if heldout else float("nan")))
        t0 = time.perf_counter()
        m = PL.fit_distilled(task, cfg, seed_texts, Y, np.ones(len(seed)), texts, P, np.ones(len(texts)))
        train_s = time.perf_counter() - t0
        d = modelfile.save(m, tmp / f"{task.name}_{family}", {"task": task.to_dict()})
        sc = Model(d)
        r = {"train_s": train_s, "size_bytes": dir_bytes(d),
             "dev_auc": auc(task, dev, sc.scores(dev_t)),
             "heldout_auc": auc(task, heldout, sc.scores(ho_t)) if heldout else float("nan"),
             "latency_us_p50": median_latency_us(sc.scores, dev_t),
             "items_per_s": best_throughput(sc.scores, score_texts, args.repeats)[0]}
        if extra:
            r["dev_auc_seeds"] = [r["dev_auc"]] + [a for a, _ in extra]
            r["heldout_auc_seeds"] = [r["heldout_auc"]] + [b for _, b in extra]
        res["students"][family] = r
        print(f"  {family}: {json.dumps(r)}", file=sys.stderr)
    return res


def table(results: list[dict]) -> str:
    lines = ["| task | student | dev ROC AUC | held-out ROC AUC | train s | model size | p50 latency | items/s (1 core) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    names = {"linear": "linear (hashed n-grams, numba)", "cnn": "char CNN (onnxruntime, 1 thread)"}
    for res in results:
        ho = "held-out " + ", ".join(res["heldout_sources"] or []) if res.get("heldout_sources") else "held-out"
        for fam, r in res["students"].items():
            size = f"{r['size_bytes'] / 1e6:.1f} MB" if r["size_bytes"] >= 1e5 else f"{r['size_bytes'] / 1e3:.0f} kB"
            dev_a, ho_a = f"{r['dev_auc']:.4f}", f"{r['heldout_auc']:.4f}"
            if "dev_auc_seeds" in r:  # mean ± sd over training seeds (the speed and size columns: seed 0)
                dev_a = f"{np.mean(r['dev_auc_seeds']):.4f} ± {np.std(r['dev_auc_seeds']):.4f}"
                ho_a = f"{np.mean(r['heldout_auc_seeds']):.4f} ± {np.std(r['heldout_auc_seeds']):.4f}"
            lines.append(f"| {res['task']} ({ho}) | {names[fam]} | {dev_a} | {ho_a} | "
                         f"{r['train_s']:.1f} | {size} | {r['latency_us_p50']:.1f} µs | {r['items_per_s']:,.0f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tasks", default="urls,cmdlines")
    ap.add_argument("--run", default=None, help="a smallworld train output dir: use its teacher_labels.jsonl")
    ap.add_argument("--seed-size", type=int, default=500)
    ap.add_argument("--teacher-rows", type=int, default=2000, help="labelled rows of the stand-in teacher")
    ap.add_argument("--pool-rows", type=int, default=3000, help="pool rows the stand-in teacher labels")
    ap.add_argument("--score-rows", type=int, default=20000)
    ap.add_argument("--cnn-seeds", type=int, default=3, help="CNN training seeds (AUC as mean ± sd)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tasks = ["(run)"] if args.run else args.tasks.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in tasks:
            results.append(run_task(args, t, Path(tmp)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
