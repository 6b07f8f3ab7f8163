"""Model size against dev ROC AUC: float32 / float16 / int8 weights x hash tables of 2**18 / 2**16 / 2**14 buckets.

Run from the repository root (about two minutes on one core):

    .venv/bin/python bench/compress_bench.py --data ../shared/data

For each task (default ``urls,cmdlines``) a ``LinearStudent`` with the task's feature settings (2**18 buckets)
is trained on the task's whole train split (one-hot labels), saved, and compressed with
``smallworld.student.compress.compress`` (the ``smallworld compress`` command: folding to fewer buckets,
then float16 or int8 storage; no retraining). Every variant is loaded back from disk and scored on the
whole dev split with ``Model``; size is the bytes of ``model.json`` + ``weights.bin``. The target is a
model of at most 2 MB (2,000,000 bytes) losing at most 0.002 dev ROC AUC against the float32 2**18 model;
the smallest variant meeting it is marked. Results also go to ``bench/out/compress_bench.json``.
"""

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_bench import ROOT, read_split, roc_auc  # noqa: E402

OUT = ROOT / "bench" / "out" / "compress_bench.json"
DTYPES = ("float32", "float16", "int8")
DIM_BITS = (18, 16, 14)
TARGET_BYTES, TARGET_LOSS = 2_000_000, 0.002


def bench_task(name: str, data: Path, tmp: Path) -> dict:
    from smallworld.student.model import Model
    from smallworld.student import modelfile
    from smallworld.student.compress import compress, model_bytes
    from smallworld.student.linear import LinearStudent
    from smallworld.tasks import load_task

    task = load_task(name)
    train = [r for r in read_split(data, name, "train") if r.get("label") in task.labels]
    dev = [r for r in read_split(data, name, "dev") if r.get("label") in task.labels]
    Y = np.zeros((len(train), len(task.labels)))
    Y[np.arange(len(train)), [task.labels.index(r["label"]) for r in train]] = 1.0
    t0 = time.perf_counter()
    m = LinearStudent(task.labels, task.features | {"dim_bits": 18}).fit([task.normalise(r["text"]) for r in train], Y)
    train_s = time.perf_counter() - t0
    src = modelfile.save(m, tmp / name / "source", {"task": task.to_dict()})
    dev_texts = [r["text"] for r in dev]
    dev_labels = [r["label"] for r in dev]

    rows = []
    for bits in DIM_BITS:
        for dtype in DTYPES:
            d = compress(src, tmp / name / f"{dtype}_{bits}", dtype=dtype, dim_bits=bits)
            auc = roc_auc(task, dev_labels, Model(d).scores(dev_texts))
            rows.append({"dim_bits": bits, "dtype": dtype, "bytes": model_bytes(d), "auc": auc})
    base = next(r["auc"] for r in rows if r["dim_bits"] == 18 and r["dtype"] == "float32")
    for r in rows:
        r["auc_loss"] = base - r["auc"]
        r["meets_target"] = r["bytes"] <= TARGET_BYTES and r["auc_loss"] <= TARGET_LOSS
    ok = [r for r in rows if r["meets_target"]]
    best = min(ok, key=lambda r: r["bytes"]) if ok else None
    return {"train_rows": len(train), "dev_rows": len(dev), "train_s": train_s, "rows": rows,
            "smallest_meeting_target": best}


def table(name: str, r: dict) -> str:
    lines = [f"### {name}: trained on {r['train_rows']:,} train rows, ROC AUC on {r['dev_rows']:,} dev rows\n",
             "| dim_bits | dtype | size (bytes) | dev ROC AUC | AUC lost | ≤ 2 MB and ≤ 0.002 lost |",
             "|---:|---|---:|---:|---:|---|"]
    for row in r["rows"]:
        mark = "yes" + (" (smallest)" if row is r["smallest_meeting_target"] else "") if row["meets_target"] else "no"
        lines.append(f"| {row['dim_bits']} | {row['dtype']} | {row['bytes']:,} | {row['auc']:.4f} "
                     f"| {row['auc_loss']:+.4f} | {mark} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--tasks", default="urls,cmdlines")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    results = {"command": " ".join([Path(sys.executable).name] + sys.argv), "tasks": {}}
    with tempfile.TemporaryDirectory(prefix="swcompress-") as tmpd:
        for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
            r = bench_task(name, args.data, Path(tmpd))
            results["tasks"][name] = r
            print(table(name, r) + "\n", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
