"""Scoring throughput on one core: a file of 1,000,000 URLs, a Python list, one item at a time, the C scorer.

Run from the repository root (about three minutes):

    .venv/bin/python bench/throughput_bench.py --data ../shared/data

A urls model (``LinearStudent`` with the task's feature settings: byte 1-5-grams and tokens, 2**18 buckets;
float32) is trained on ``--train-rows`` rows of the urls train split and saved. The scoring file is built in
``--tmp`` from the urls dev and pool splits, repeated and shuffled to ``--items`` lines (plain lines, one URL
each). Measured, best of ``--repeats`` passes, after a warm-up (the JIT cache loaded, the file in the page
cache):

* **file**: ``smallworld score MODEL FILE --out OUT`` as the command runs it (``Model`` +
  ``score_stream`` over ``data.iter_rows``: the plain-lines fast path), output to a file in ``--tmp``;
  again with the model folded to 2**16 buckets (``smallworld compress --dim-bits 16``: its weights fit in
  a core's L2 cache); and once end to end as a subprocess (interpreter start, imports, model load included);
* **list**: ``Model.scores(texts)`` on the same items as a Python list of str (read from the file; a list
  of strings scattered in memory scores slower, the strings being read once more than the kernel reads);
* **single**: median latency of ``Model.scores([text])`` over 2000 calls;
* **C**: ``smallworld/serve/c/smallworld_score.c`` built with ``cc -O2``, the file on stdin, scores to a file;
* **url_signals**: ``Model.scores`` on the first 200,000 items with a model trained on the same rows through the
  ``url_signals`` view (Python per item: what the opt-in view costs);
* **reference**: the general path, ``model.predict_proba`` (``features.pack`` + ``features.logits`` +
  softmax) on the list;
* **scikit-learn**: ``HashingVectorizer(analyzer="char", ngram_range=(2, 5), n_features=2**20,
  alternate_sign=False)`` + ``LogisticRegression``, trained on the same rows, ``decision_function`` on the
  first ``--sklearn-items`` items (``student_bench.bench_sklearn``).

Threads are pinned to one (``NUMBA_NUM_THREADS`` and BLAS variables set before any import; ``--cpu N`` also
pins the process and its children to CPU N, which on a busy machine shares that core's caches). Items/s
are given both by wall time and by the process's CPU time (``time.process_time``; for the subprocesses,
``RUSAGE_CHILDREN``): on a busy machine the CPU-time figure is the one that says what one core does.
Agreement with the reference path is checked: the file path's scores (parsed from its JSONL), the list
path's and the C scorer's (max abs difference), and the file path's output byte for byte against the
general (per-row) path on the first 200,000 lines.
Results also go to ``bench/out/throughput_bench.json``.
"""

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_bench import ROOT, bench_sklearn, read_split  # noqa: E402

OUT = ROOT / "bench" / "out" / "throughput_bench.json"
C_SRC = ROOT / "smallworld" / "serve" / "c" / "smallworld_score.c"


def timed(fn, repeats: int) -> tuple[float, float]:
    """Best wall seconds and best CPU seconds of this process over repeats calls."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu


def timed_child(cmd, repeats: int, stdin_path: Path | None = None,
                stdout_path: Path | None = None) -> tuple[float, float]:
    wall = cpu = float("inf")
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        with open(stdin_path or os.devnull, "rb") as fi, open(stdout_path or os.devnull, "wb") as fo:
            subprocess.run(cmd, stdin=fi, stdout=fo, check=True, cwd=ROOT)
        w = time.perf_counter() - w0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, cpu = min(wall, w), min(cpu, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--sklearn-items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="pin this process and its children to this CPU")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/smallworld-throughput"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # children inherit it

    from smallworld import data as D
    from smallworld.serve.score import score_stream
    from smallworld.student.model import Model
    from smallworld.student import modelfile
    from smallworld.student.compress import compress
    from smallworld.student.linear import LinearStudent
    from smallworld.tasks import load_task

    task = load_task("urls")
    args.tmp.mkdir(parents=True, exist_ok=True)
    train = [r for r in read_split(args.data, "urls", "train") if r.get("label") in task.labels]
    random.Random(0).shuffle(train)
    train = train[: args.train_rows]
    dev = [r for r in read_split(args.data, "urls", "dev") if r.get("label") in task.labels]
    pool = read_split(args.data, "urls", "pool")
    urls = [r["text"] for r in dev + pool if "\n" not in r["text"] and "\r" not in r["text"] and r["text"].strip()]
    rng = random.Random(1)
    items_path = args.tmp / "urls.txt"
    items_path.write_text("\n".join(urls[rng.randrange(len(urls))] for _ in range(args.items)) + "\n",
                          encoding="utf-8")
    texts = items_path.read_text(encoding="utf-8").split("\n")[:-1]  # the list: fresh strings, as read
    del urls, pool
    print(f"{len(texts):,} URLs ({items_path.stat().st_size / len(texts):.1f} bytes each) in {items_path}; "
          f"training on {len(train):,} rows", file=sys.stderr, flush=True)

    Y = np.zeros((len(train), 2))
    Y[np.arange(len(train)), [task.labels.index(r["label"]) for r in train]] = 1.0
    m = LinearStudent(task.labels, task.features).fit([r["text"] for r in train], Y)
    model_dir = modelfile.save(m, args.tmp / "model", {"task": task.to_dict()})
    sc = Model(model_dir)
    n = len(texts)
    res = {"items": n, "bytes_per_item": items_path.stat().st_size / n, "train_rows": len(train), "cpu": args.cpu,
           "loadavg": os.getloadavg(), "features": dict(m.feature_config), "paths": {}}

    def record(name, wall, cpu_s, count=n, **extra):
        res["paths"][name] = {"items_per_s_wall": count / wall, "items_per_s_cpu": count / cpu_s, **extra}
        print(f"{name}: {count / wall:,.0f}/s wall, {count / cpu_s:,.0f}/s CPU", file=sys.stderr, flush=True)

    # -- file (the fast path of `smallworld score`)
    out_path = args.tmp / "scores.jsonl"

    def score_file(path=items_path, dest=out_path):
        with open(dest, "w", encoding="utf-8") as f:
            return score_stream(sc, D.iter_rows(path), f)

    head = args.tmp / "head.txt"
    head.write_text("\n".join(texts[:1000]) + "\n", encoding="utf-8")
    score_file(head, args.tmp / "warm.jsonl")  # JIT cache
    record("file", *timed(score_file, args.repeats))
    file_scores = np.array([json.loads(line)["score"] for line in out_path.open(encoding="utf-8")])
    # the same, with the model folded to 2**16 buckets (``smallworld compress --dim-bits 16``): a quarter of
    # the weights to keep in cache
    small = Model(compress(model_dir, args.tmp / "model16", dim_bits=16))
    with open(args.tmp / "warm.jsonl", "w", encoding="utf-8") as f:
        score_stream(small, D.iter_rows(head), f)

    def score_file_small():
        with open(args.tmp / "scores16.jsonl", "w", encoding="utf-8") as f:
            return score_stream(small, D.iter_rows(items_path), f)

    record("file_dim16", *timed(score_file_small, args.repeats))
    cli_wall, cli_cpu = timed_child([sys.executable, "-m", "smallworld.cli", "score", str(model_dir), str(items_path),
                                     "--out", str(args.tmp / "cli.jsonl")], 1)
    record("file_cli_end_to_end", cli_wall, cli_cpu)

    # byte-for-byte against the general path (the same rows as a plain iterator: scored batch by batch)
    head_k = args.tmp / "head_k.txt"
    head_k.write_text("\n".join(texts[:200_000]) + "\n", encoding="utf-8")
    general, fast = io.StringIO(), io.StringIO()
    score_stream(sc, iter(list(D.iter_rows(head_k))), general)
    score_stream(sc, D.iter_rows(head_k), fast)
    identical = general.getvalue() == fast.getvalue()

    # -- list, single item, reference
    sc.scores(texts[:10])
    record("list", *timed(lambda: sc.scores(texts), args.repeats))
    list_scores = sc.scores(texts)
    lat = []
    for i in range(2050):
        t = [texts[i]]
        t0 = time.perf_counter_ns()
        sc.scores(t)
        lat.append(time.perf_counter_ns() - t0)
    res["paths"]["single"] = {"latency_us_p50": statistics.median(lat[50:]) / 1000,
                              "latency_us_p99": float(np.percentile(lat[50:], 99)) / 1000}
    print(f"single: p50 {res['paths']['single']['latency_us_p50']:.1f} µs", file=sys.stderr, flush=True)
    # the same model trained on the URL signals view (``normaliser = "url_signals"``, opt-in): Python per item
    sig_task = dataclasses.replace(task, normaliser="url_signals")
    sig_m = LinearStudent(task.labels, task.features).fit([sig_task.view(r) for r in train], Y)
    sig = Model(modelfile.save(sig_m, args.tmp / "model_signals", {"task": sig_task.to_dict()}))
    sig_n = min(n, 200_000)
    record("list_url_signals", *timed(lambda: sig.scores(texts[:sig_n]), 1), count=sig_n)
    ref_n = min(n, 200_000)
    record("reference", *timed(lambda: sc.model.predict_proba(texts[:ref_n]), 1), count=ref_n)
    ref = sc.model.predict_proba(texts)[:, sc.pos]
    res["max_abs_diff_vs_reference"] = {"file": float(np.abs(file_scores - ref).max()),
                                        "list": float(np.abs(list_scores - ref).max())}
    res["file_output_identical_to_general_path"] = identical

    # -- C scorer
    cc = os.environ.get("CC") or shutil.which("cc")
    if cc:
        exe = args.tmp / "smallworld_score"
        subprocess.run([cc, "-O2", "-std=c99", "-o", str(exe), str(C_SRC), "-lm"], check=True)
        c_out = args.tmp / "c_scores.txt"
        record("c", *timed_child([str(exe), str(model_dir)], args.repeats, items_path, c_out))
        res["max_abs_diff_vs_reference"]["c"] = float(np.abs(np.loadtxt(c_out) - ref).max())

    # -- scikit-learn baseline (list throughput on the first --sklearn-items items)
    class A:
        repeats = args.repeats

    sk_texts = texts[: args.sklearn_items]
    sk = bench_sklearn(task, [r["text"] for r in train], [r["label"] for r in train], [r["text"] for r in dev],
                       [r["label"] for r in dev], sk_texts, A)
    res["sklearn"] = {"items_per_s_wall": sk["throughput"], "latency_us_p50": sk["latency_us_p50"],
                      "items": len(sk_texts)}
    print(f"sklearn: {sk['throughput']:,.0f}/s wall", file=sys.stderr, flush=True)

    print(table(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def table(res: dict) -> str:
    sk = res["sklearn"]["items_per_s_wall"]
    d = res["max_abs_diff_vs_reference"]
    rows = [("file (`smallworld score`, plain lines)", "file", d["file"]),
            ("file, model folded to 2**16 buckets", "file_dim16", None),
            ("file, CLI end to end (start-up included)", "file_cli_end_to_end", None),
            ("Python list (`Model.scores`)", "list", d["list"]),
            ("Python list, a model on the `url_signals` view", "list_url_signals", None),
            ("C reference scorer (stdin to file)", "c", d.get("c")),
            ("general path (`predict_proba`)", "reference", 0.0)]
    lines = [f"### urls: {res['items']:,} items of {res['bytes_per_item']:.1f} bytes, one core "
             f"(load average {res['loadavg'][0]:.1f} at start)\n",
             "| path | items/s (wall) | items/s (CPU time) | vs scikit-learn (wall) | max abs diff vs general path |",
             "|---|---:|---:|---:|---:|"]
    for label, key, diff in rows:
        p = res["paths"].get(key)
        if p is None:
            continue
        lines.append(f"| {label} | {p['items_per_s_wall']:,.0f} | {p['items_per_s_cpu']:,.0f} "
                     f"| {p['items_per_s_wall'] / sk:.1f}x | {'-' if diff is None else f'{diff:.1e}'} |")
    lines.append(f"| scikit-learn HashingVectorizer + LogisticRegression | {sk:,.0f} | | 1.0x | |")
    s = res["paths"]["single"]
    lines.append(f"\nsingle item: p50 {s['latency_us_p50']:.1f} µs, p99 {s['latency_us_p99']:.1f} µs "
                 f"(scikit-learn p50 {res['sklearn']['latency_us_p50']:.0f} µs); file output byte-identical to "
                 f"the general path: {res['file_output_identical_to_general_path']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
