"""What the command-line view costs when scoring: the built-in ``cmdlines`` model (``normaliser = "cmdline"``, Python
per item) against the same model on raw text (``normaliser = "none"``, the fused kernel) and scikit-learn, on one
core, in one run.

    .venv/bin/python bench/view_bench.py --data ../shared/data [--items 50000] [--repeats 3]

Both smallworld models are ``LinearStudent``s with the task's feature settings, trained on the cmdlines train split;
scikit-learn is ``student_bench.sklearn_model`` (char 2-5-gram ``HashingVectorizer`` + ``LogisticRegression``) on
the same rows. The items are the train, dev, pool and telemetry command lines, repeated to ``--items``. Measured:
``Model.scores(list)`` per model and the view alone (``cmdline.cmdline_view`` per item), best of ``--repeats``
passes by CPU time of this process. Results also go to ``bench/out/view_bench.json``.
"""

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_bench import ROOT, read_split, sklearn_model  # noqa: E402

from smallworld.pipeline import onehot  # noqa: E402
from smallworld.student import modelfile  # noqa: E402
from smallworld.student.linear import LinearStudent  # noqa: E402
from smallworld.student.model import Model  # noqa: E402
from smallworld.tasks import cmdline, load_task  # noqa: E402


def cpu_rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return n / best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "view_bench.json")
    args = ap.parse_args(argv)
    train = read_split(args.data, "cmdlines", "train")
    pool = [r["text"] for s in ("train", "dev", "pool", "telemetry") for r in read_split(args.data, "cmdlines", s)]
    items = (pool * (args.items // len(pool) + 1))[:args.items]
    task = load_task("cmdlines")
    res = {"items": len(items)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, t in (("view", task), ("raw", dataclasses.replace(task, normaliser="none"))):
            m = LinearStudent(t.labels, dict(t.features)).fit([t.normalise(r["text"]) for r in train],
                                                              onehot(t, [r["label"] for r in train]))
            modelfile.save(m, Path(tmp) / name, {"task": t.to_dict()})
            sc = Model(Path(tmp) / name)
            sc.scores(items[:100])  # warm-up: the kernel's JIT cache
            res[f"smallworld_{name}"] = cpu_rate(lambda: sc.scores(items), len(items), args.repeats)
    res["view_alone"] = cpu_rate(lambda: [cmdline.cmdline_view(x) for x in items], len(items), args.repeats)
    vec, lr = sklearn_model([r["text"] for r in train], [r["label"] for r in train])
    res["scikit_learn"] = cpu_rate(lambda: lr.decision_function(vec.transform(items)), len(items), args.repeats)
    print("| path | items/s (one core) | vs scikit-learn |\n|---|---:|---:|")
    for k, label in (("smallworld_view", "smallworld, the `cmdlines` view (built-in default)"),
                     ("view_alone", "the view alone (`cmdline_view`)"),
                     ("smallworld_raw", "smallworld, raw text (`normaliser = \"none\"`)"),
                     ("scikit_learn", "scikit-learn (HashingVectorizer + LogisticRegression)")):
        print(f"| {label} | {res[k]:,.0f} | {res[k] / res['scikit_learn']:.2f}× |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
