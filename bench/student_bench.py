"""Benchmark the smallworld linear student against scikit-learn and fastText, on the same rows.

Run from the repository root:

    .venv/bin/python bench/student_bench.py --data ../shared/data

Quick check (about a minute):

    .venv/bin/python bench/student_bench.py --data ../shared/data --train-rows 3000 --score-rows 20000 --tasks cmdlines

For each task (default ``urls,cmdlines``) the three systems are trained on the same ``--train-rows`` rows
(a seeded random sample of the task's train split) and scored on the same rows:

* **smallworld**: ``LinearStudent(task.labels, task.features)`` fitted on one-hot targets; scored with the
  fused numba kernel (``features.pack`` + ``features.logits``, i.e. hashing + look-up + sum in one pass).
  Size: bytes of the ``modelfile.save`` directory (float32, and float16).
* **scikit-learn**: ``HashingVectorizer(analyzer="char", ngram_range=(2, 5), n_features=2**20,
  alternate_sign=False)`` + ``LogisticRegression(max_iter=1000)``; scored with ``transform`` +
  ``decision_function``. Size: ``coef_.nbytes + intercept_.nbytes``.
* **fastText** (``fasttext-wheel``): ``train_supervised(minn=2, maxn=5, wordNgrams=2, dim=16, epoch=10,
  lr=0.5, thread=1)``; scored with ``model.predict(list_of_texts, k=1)``. Size: bytes of the saved ``.bin``
  (and of the quantized ``.ftz``).

Measured per system: training seconds (wall), scoring throughput in items/s on one core (best of
``--repeats`` passes over ``--score-rows`` dev texts, repeated cyclically when dev is smaller), single-item
latency (median of 1000 calls, each scoring one item), dev ROC AUC (positive class ``task.positive``, the
full dev split), model size in bytes, and peak RSS growth during training and during scoring (Linux: the
peak is reset through ``/proc/self/clear_refs`` before each phase; elsewhere the growth of
``getrusage().ru_maxrss``, which only counts new process-wide peaks).

Scoring outputs differ in kind but all rank items: smallworld returns logits, scikit-learn margins and
fastText the top label's probability. fastText with numpy 2 has two known quirks: ``predict(str)`` raises and
``predict(list, k>1)`` repeats the top probability in every slot. The throughput path therefore uses
``k=1`` (the positive-class probability is p or 1 - p, exact for two-label softmax); the AUC uses the
binding's per-line ``f.predict(line, -1, ...)``, which returns every label's true probability.

Threads are pinned to one (``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS`` set before any import; fastText trains with ``thread=1`` and predicts on one thread).
Results go to ``bench/out/student_bench.json`` and a Markdown table per task is printed.
"""

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "student_bench.json"
SYSTEMS = ("smallworld", "sklearn", "fasttext")


# -- memory -------------------------------------------------------------------------------------------------
class PeakRSS:
    """Peak resident-memory growth over a block, in bytes."""

    def __init__(self):
        self.growth = None
        self.method = None

    @staticmethod
    def _status(field):
        try:
            with open("/proc/self/status") as f:
                m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) * 1024 if m else None
        except OSError:
            return None

    def __enter__(self):
        gc.collect()
        self._clear = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self._clear = True
        except OSError:
            pass
        self._rss0 = self._status("VmRSS")
        self._max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        return self

    def __exit__(self, *exc):
        hwm = self._status("VmHWM")
        if self._clear and hwm is not None and self._rss0 is not None:
            self.growth, self.method = max(0, hwm - self._rss0), "VmHWM"
        else:
            mx = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
            self.growth, self.method = max(0, mx - self._max0), "ru_maxrss"
        return False


# -- data ---------------------------------------------------------------------------------------------------
def read_split(data_dir: Path, task: str, split: str) -> list[dict]:
    path = data_dir / task / f"{split}.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def best_throughput(fn, texts, repeats):
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(texts)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return len(texts) / best, best


def median_latency_us(fn, texts, calls=1000, warm=50):
    for i in range(warm):
        fn(texts[i % len(texts)])
    times = []
    for i in range(calls):
        t = texts[i % len(texts)]
        t0 = time.perf_counter_ns()
        fn(t)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


# -- systems ------------------------------------------------------------------------------------------------
def bench_smallworld(task, train_texts, Y, dev_texts, dev_labels, score_texts, args, tmp: Path) -> dict:
    from smallworld.student import features, modelfile
    from smallworld.student.linear import LinearStudent

    # exclude numba JIT compilation (or cache loading) from every timing
    cfg = features.config(task.features)
    features.transform(train_texts[:4], cfg)
    features.logits(*features.pack(train_texts[:4]), cfg, np.zeros((1 << cfg["dim_bits"], len(task.labels)),
                                                                       np.float32), np.zeros(len(task.labels), np.float32))

    with PeakRSS() as mem_train:
        t0 = time.perf_counter()
        m = LinearStudent(task.labels, task.features).fit(train_texts, Y)
        train_s = time.perf_counter() - t0

    P = m.predict_proba(dev_texts)
    auc = roc_auc(task, dev_labels, P[:, task.pos_index])

    # what `Model.scores` does for a two-class model: the fused one-column kernel
    w, b0 = features.binary_weights(m.W, m.b, task.pos_index)

    def score(texts):
        return features.binary_probs(texts, m.feature_config, w, b0)

    score(score_texts[:100])  # warm-up
    with PeakRSS() as mem_score:
        tput, best_s = best_throughput(score, score_texts, args.repeats)
    buf, off = features.pack(score_texts)
    kernel_tput, _ = best_throughput(lambda _t: features.logits(buf, off, m.feature_config, m.W, m.b),
                                     score_texts, args.repeats)
    lat = median_latency_us(lambda t: score([t]), dev_texts)

    d32, d16 = tmp / "sw_f32", tmp / "sw_f16"
    modelfile.save(m, d32)
    modelfile.save(m, d16, dtype="float16")
    m16, _ = modelfile.load(d16)
    auc16 = roc_auc(task, dev_labels, m16.predict_proba(dev_texts)[:, task.pos_index])
    return {
        "train_s": train_s, "lbfgs_iters": m.n_iter_, "throughput": tput, "throughput_pass_s": best_s,
        "throughput_kernel_only": kernel_tput, "latency_us_p50": lat, "auc": auc, "auc_float16": auc16,
        "size_bytes": dir_bytes(d32), "size_bytes_float16": dir_bytes(d16),
        "train_peak_rss_growth": mem_train.growth, "score_peak_rss_growth": mem_score.growth,
        "rss_method": mem_train.method, "features": dict(m.feature_config),
    }


def sklearn_model(train_texts, train_labels):
    """The scikit-learn peer: char 2-5-gram HashingVectorizer (2**20 features) + LogisticRegression, fitted."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = HashingVectorizer(analyzer="char", ngram_range=(2, 5), n_features=2 ** 20, alternate_sign=False)
    return vec, LogisticRegression(max_iter=1000).fit(vec.transform(train_texts), train_labels)


def bench_sklearn(task, train_texts, train_labels, dev_texts, dev_labels, score_texts, args) -> dict:
    with PeakRSS() as mem_train:
        t0 = time.perf_counter()
        vec, lr = sklearn_model(train_texts, train_labels)
        train_s = time.perf_counter() - t0

    pos_col = list(lr.classes_).index(task.positive)
    P = lr.predict_proba(vec.transform(dev_texts))
    auc = roc_auc(task, dev_labels, P[:, pos_col])

    def score(texts):
        return lr.decision_function(vec.transform(texts))

    score(score_texts[:100])
    with PeakRSS() as mem_score:
        tput, best_s = best_throughput(score, score_texts, args.repeats)
    lat = median_latency_us(lambda t: score([t]), dev_texts)
    return {
        "train_s": train_s, "lbfgs_iters": int(np.max(lr.n_iter_)), "throughput": tput, "throughput_pass_s": best_s,
        "latency_us_p50": lat, "auc": auc, "size_bytes": int(lr.coef_.nbytes + lr.intercept_.nbytes),
        "train_peak_rss_growth": mem_train.growth, "score_peak_rss_growth": mem_score.growth,
        "rss_method": mem_train.method,
    }


def _ft_line(t: str) -> str:
    return t.replace("\n", " ").replace("\r", " ")


def bench_fasttext(task, train_texts, train_labels, dev_texts, dev_labels, score_texts, args, tmp: Path) -> dict:
    import fasttext

    train_file = tmp / "ft_train.txt"
    with open(train_file, "w", encoding="utf-8", errors="replace") as f:
        for t, y in zip(train_texts, train_labels):
            f.write(f"__label__{y} {_ft_line(t)}\n")
    params = dict(minn=2, maxn=5, wordNgrams=2, dim=args.ft_dim, epoch=10, lr=args.ft_lr, bucket=args.ft_bucket,
                  thread=1, verbose=0)
    with PeakRSS() as mem_train:
        t0 = time.perf_counter()
        model = fasttext.train_supervised(input=str(train_file), **params)
        train_s = time.perf_counter() - t0

    pos_label = f"__label__{task.positive}"

    def pos_prob_exact(m, texts):
        # the binding's per-line predict returns [(prob, label), ...] for every label, unaffected by the
        # numpy-2 quirk in the list path
        out = np.empty(len(texts))
        for i, t in enumerate(texts):
            out[i] = dict((lab, p) for p, lab in m.f.predict(_ft_line(t) + "\n", -1, 0.0, "strict")).get(pos_label, 0.0)
        return out

    def score(texts):
        labels, probs = model.predict([_ft_line(t) for t in texts], k=1)
        return np.array([p[0] if lab[0] == pos_label else 1.0 - p[0] for lab, p in zip(labels, probs)])

    exact = pos_prob_exact(model, dev_texts)
    auc = roc_auc(task, dev_labels, exact)
    fast = score(dev_texts)
    k1_maxdiff = float(np.max(np.abs(fast - exact))) if len(task.labels) == 2 else None

    score(score_texts[:100])
    with PeakRSS() as mem_score:
        tput, best_s = best_throughput(score, score_texts, args.repeats)
    lat = median_latency_us(lambda t: model.predict([_ft_line(t)], k=1), dev_texts)

    bin_path = tmp / "ft.bin"
    model.save_model(str(bin_path))
    res = {
        "train_s": train_s, "params": params, "throughput": tput, "throughput_pass_s": best_s,
        "latency_us_p50": lat, "auc": auc, "k1_vs_exact_max_abs_diff": k1_maxdiff,
        "size_bytes": bin_path.stat().st_size,
        "train_peak_rss_growth": mem_train.growth, "score_peak_rss_growth": mem_score.growth,
        "rss_method": mem_train.method,
    }
    if not args.no_quantize:
        t0 = time.perf_counter()
        model.quantize(input=str(train_file), qnorm=True, retrain=True, cutoff=args.ft_cutoff, thread=1, verbose=0)
        res["quantize_s"] = time.perf_counter() - t0
        ftz = tmp / "ft.ftz"
        model.save_model(str(ftz))
        res["size_bytes_ftz"] = ftz.stat().st_size
        res["ftz_cutoff"] = args.ft_cutoff
        res["auc_ftz"] = roc_auc(task, dev_labels, pos_prob_exact(model, dev_texts))
    return res


# -- scoring helpers ----------------------------------------------------------------------------------------


def roc_auc(task, labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.array([lab == task.positive for lab in labels], dtype=int)
    return float(roc_auc_score(y, scores))


# -- report -------------------------------------------------------------------------------------------------
def _mb(b):
    return "n/a" if b is None else f"{b / 1e6:.1f} MB" if b >= 1e5 else f"{b / 1e3:.0f} kB"


def table(name: str, r: dict) -> str:
    sw, sk, ft = (r["systems"].get(s) for s in SYSTEMS)

    def ratio(x, ref):
        return "n/a" if not (x and ref) else f"{x['throughput'] / ref['throughput']:.2f}x"

    rows = []
    for label, s, extra_size in (
        ("smallworld student", sw, lambda s: f" (fp16 {_mb(s['size_bytes_float16'])})"),
        ("scikit-learn", sk, lambda s: ""),
        ("fastText", ft, lambda s: f" (.ftz {_mb(s['size_bytes_ftz'])})" if "size_bytes_ftz" in s else ""),
    ):
        if s is None:
            continue
        rows.append(
            f"| {label} | {s['train_s']:.1f} | {s['throughput']:,.0f} | {ratio(s, sk)} | {ratio(s, ft)} "
            f"| {s['latency_us_p50']:.1f} | {s['auc']:.4f} | {_mb(s['size_bytes'])}{extra_size(s)} "
            f"| {_mb(s['train_peak_rss_growth'])} | {_mb(s['score_peak_rss_growth'])} |"
        )
    head = (f"### {name}: train {r['train_rows']:,} rows, dev {r['dev_rows']:,} rows (AUC), "
            f"throughput over {r['score_rows']:,} items, best of {r['repeats']}\n\n"
            "| system | train s | items/s (1 core) | throughput vs sklearn | vs fastText | latency p50 µs "
            "| dev ROC AUC | model size | train peak RSS Δ | score peak RSS Δ |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    return head + "\n" + "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--tasks", default="urls,cmdlines")
    ap.add_argument("--train-rows", type=int, default=20000)
    ap.add_argument("--score-rows", type=int, default=100000)
    ap.add_argument("--repeats", type=int, default=3, help="throughput passes; the best is kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ft-dim", type=int, default=16)
    ap.add_argument("--ft-lr", type=float, default=0.5)
    ap.add_argument("--ft-bucket", type=int, default=2_000_000, help="fastText's default")
    ap.add_argument("--ft-cutoff", type=int, default=100_000, help="quantize: keep this many words/n-grams")
    ap.add_argument("--no-quantize", action="store_true", help="skip fastText quantize (.ftz)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    from smallworld.tasks import load_task

    import fasttext
    import numba
    import scipy
    import sklearn

    results = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "env": {
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "sklearn": sklearn.__version__, "numba": numba.__version__,
            "fasttext": getattr(fasttext, "__version__", "fasttext-wheel"),
            "machine": platform.machine(), "cpu": _cpu_name(), "cpus_visible": os.cpu_count(),
            "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "threads": {k: os.environ[k] for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        },
        "tasks": {},
    }
    for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        task = load_task(name)
        train = read_split(args.data, name, "train")
        dev = read_split(args.data, name, "dev")
        random.Random(args.seed).shuffle(train)
        train = [r for r in train if r.get("label") in task.labels][: args.train_rows]
        dev = [r for r in dev if r.get("label") in task.labels]
        train_texts = [task.normalise(r["text"]) for r in train]
        train_labels = [r["label"] for r in train]
        dev_texts = [task.normalise(r["text"]) for r in dev]
        dev_labels = [r["label"] for r in dev]
        score_texts = [dev_texts[i % len(dev_texts)] for i in range(args.score_rows)]
        Y = np.zeros((len(train), len(task.labels)), dtype=np.float64)
        Y[np.arange(len(train)), [task.labels.index(y) for y in train_labels]] = 1.0
        print(f"[{name}] train {len(train_texts):,} rows, dev {len(dev_texts):,}, scoring {len(score_texts):,}",
              file=sys.stderr, flush=True)

        r = {"train_rows": len(train_texts), "dev_rows": len(dev_texts), "score_rows": len(score_texts),
             "repeats": args.repeats, "labels": list(task.labels), "positive": task.positive, "systems": {}}
        with tempfile.TemporaryDirectory(prefix="swbench-") as tmpd:
            tmp = Path(tmpd)
            for sysname, fn in (
                ("smallworld", lambda: bench_smallworld(task, train_texts, Y, dev_texts, dev_labels, score_texts, args, tmp)),
                ("sklearn", lambda: bench_sklearn(task, train_texts, train_labels, dev_texts, dev_labels, score_texts, args)),
                ("fasttext", lambda: bench_fasttext(task, train_texts, train_labels, dev_texts, dev_labels, score_texts, args, tmp)),
            ):
                t0 = time.perf_counter()
                r["systems"][sysname] = fn()
                s = r["systems"][sysname]
                print(f"[{name}] {sysname}: train {s['train_s']:.1f}s, {s['throughput']:,.0f} items/s, "
                      f"AUC {s['auc']:.4f} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
                gc.collect()
        sk, ft = r["systems"]["sklearn"], r["systems"]["fasttext"]
        for s in r["systems"].values():
            s["throughput_vs_sklearn"] = s["throughput"] / sk["throughput"]
            s["throughput_vs_fasttext"] = s["throughput"] / ft["throughput"]
        results["tasks"][name] = r
        print(table(name, r) + "\n", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        return m.group(1) if m else platform.processor()
    except OSError:
        return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
