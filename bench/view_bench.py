"""What a task's view costs when scoring: the built-in ``cmdlines`` model (``normaliser = "cmdline"``, Python
per item) against the same model on raw text (``normaliser = "none"``, the fused kernel) and scikit-learn, on one
core, in one run; ``--task emails`` likewise for mail (``email_signals``), with its feature tokens written once
beside the default ``SIGNAL_REPEAT`` times.

    .venv/bin/python bench/view_bench.py --data ../shared/data [--task emails] [--items 50000] [--repeats 3]

Both smallworld models are ``LinearStudent``s with the task's feature settings, trained on the cmdlines train split;
scikit-learn is ``student_bench.sklearn_model`` (char 2-5-gram ``HashingVectorizer`` + ``LogisticRegression``) on
the same rows. The items are the train, dev, pool and telemetry command lines, repeated to ``--items``. Measured:
``Model.scores(list)`` per model and the view alone (``Task.normalise`` per item), best of ``--repeats``
passes by CPU time of this process. Results also go to ``bench/out/view_bench[_TASK].json``.
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
from smallworld.tasks import load_task, mail  # noqa: E402


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
    ap.add_argument("--task", choices=("cmdlines", "emails"), default="cmdlines")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    out = args.out or ROOT / "bench" / "out" / ("view_bench.json" if args.task == "cmdlines" else
                                                f"view_bench_{args.task}.json")
    train = read_split(args.data, args.task, "train")
    pool = [r["text"] for s in ("train", "dev", "pool", "telemetry") for r in read_split(args.data, args.task, s)]
    items = (pool * (args.items // len(pool) + 1))[:args.items]
    task = load_task(args.task)
    res = {"items": len(items)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, t in (("view", task), ("raw", dataclasses.replace(task, normaliser="none"))):
            m = LinearStudent(t.labels, dict(t.features)).fit([t.normalise(r["text"]) for r in train],
                                                              onehot(t, [r["label"] for r in train]))
            modelfile.save(m, Path(tmp) / name, {"task": t.to_dict()})
            sc = Model(Path(tmp) / name)
            sc.scores(items[:100])  # warm-up: the kernel's JIT cache
            res[f"smallworld_{name}"] = cpu_rate(lambda: sc.scores(items), len(items), args.repeats)
    res["view_alone"] = cpu_rate(lambda: [task.normalise(x) for x in items], len(items), args.repeats)
    if args.task == "emails":
        res["view_once"] = cpu_rate(lambda: [mail.email_view(x, True, True, repeat=1) for x in items], len(items),
                                    args.repeats)
        res["view_chars"] = sum(len(task.normalise(x)) for x in pool) / len(pool)
        res["view_once_chars"] = sum(len(mail.email_view(x, True, True, repeat=1)) for x in pool) / len(pool)
    vec, lr = sklearn_model([r["text"] for r in train], [r["label"] for r in train])
    res["scikit_learn"] = cpu_rate(lambda: lr.decision_function(vec.transform(items)), len(items), args.repeats)
    print("| path | items/s (one core) | vs scikit-learn |\n|---|---:|---:|")
    rows = [("smallworld_view", f"smallworld, the `{args.task}` view (built-in default)"),
            ("view_alone", f"the view alone (`{task.normaliser}`)")]
    if args.task == "emails":
        rows.append(("view_once", f"the view alone, feature tokens written once, not {mail.SIGNAL_REPEAT} times"))
    for k, label in (*rows,
                     ("smallworld_raw", "smallworld, raw text (`normaliser = \"none\"`)"),
                     ("scikit_learn", "scikit-learn (HashingVectorizer + LogisticRegression)")):
        print(f"| {label} | {res[k]:,.0f} | {res[k] / res['scikit_learn']:.2f}× |")
    if args.task == "emails":
        print(f"\nmean view length: {res['view_chars']:,.0f} characters ({res['view_once_chars']:,.0f} with the tokens once)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
