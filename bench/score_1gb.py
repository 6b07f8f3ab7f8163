"""`smallworld score` on a ~1 GB input: does its memory stay flat as the input grows?

Run from the repository root:

    .venv/bin/python bench/score_1gb.py --data ../shared/data

1. Builds ``--size-gb`` of newline-delimited URLs in a temporary directory under /tmp: the urls dev split
   (20,801 rows), repeated, every repetition after the first perturbed (a ``/r<k>`` path segment before the
   query, or a ``r=<k>`` query parameter), so no two repetitions are byte-identical. With ``--variant jsonl``
   (or ``both``) also the same URLs as JSON Lines ``{"id": ..., "text": ...}`` (``--jsonl-gb``, default the
   same size).
2. Takes ``--model DIR`` or trains a linear urls student on 5,000 train rows (one-hot, the pipeline's
   ``LinearStudent``) and saves it.
3. Runs ``python -m smallworld.cli score MODEL FILE --out /dev/null`` (``--out-file`` writes a real file in
   the temporary directory instead) as a child process and, every ``--interval`` seconds (0.5), reads the
   child's ``VmRSS`` from ``/proc/PID/status`` and its read offset in the input from ``/proc/PID/fdinfo``.
4. Reports the peak RSS seen up to 10%, 50% and 100% of the input (by read offset), the child's peak, the rows, and items/s over the child's wall time (start-up included) and
   in the steady state between the 10% and 100% marks. The child's peak is its ``VmHWM`` at the last sample
   (not ``wait4``'s ``ru_maxrss``, which on Linux also counts the parent's memory at fork time).

The input files are deleted afterwards (``--keep`` keeps them). Results go to ``bench/out/score_1gb.json``.
"""

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smallworld import data as D  # noqa: E402
from smallworld import pipeline as PL  # noqa: E402
from smallworld.student import modelfile  # noqa: E402
from smallworld.student.linear import LinearStudent  # noqa: E402
from smallworld.tasks import load_task  # noqa: E402

OUT = ROOT / "bench" / "out" / "score_1gb.json"


def perturb(u: str, k: int) -> str:
    if k == 0:
        return u
    if k % 2:
        return u + ("&" if "?" in u else "?") + f"r={k}"
    q = u.find("?")
    return (u + f"/r{k}") if q < 0 else (u[:q] + f"/r{k}" + u[q:])


def build(path: Path, urls: list[str], size: int, jsonl: bool) -> tuple[int, int]:
    """Write at least ``size`` bytes; (bytes, rows)."""
    urls = [u.replace("\n", " ").replace("\r", " ") for u in urls]
    written = rows = 0
    k = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        while written < size:
            batch = [perturb(u, k) for u in urls]
            if jsonl:
                block = "".join(json.dumps({"id": f"{k}-{i}", "text": t}) + "\n" for i, t in enumerate(batch))
            else:
                block = "\n".join(batch) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
            rows += len(batch)
            k += 1
    return path.stat().st_size, rows


def _status(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _read_pos(pid: int, target: Path) -> int | None:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(target):
                    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                        for line in f:
                            if line.startswith("pos:"):
                                return int(line.split()[1])
            except OSError:
                continue
    except OSError:
        return None
    return None


def score_run(model: Path, inp: Path, size: int, rows: int, out: str, interval: float) -> dict:
    cmd = [sys.executable, "-m", "smallworld.cli", "score", str(model), str(inp), "--out", out]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []  # (seconds, bytes read, rss)
    status = None
    # the child's own high-water mark (VmHWM, last sample before it exits); wait4's ru_maxrss would count the
    # parent's memory at fork time too (Linux keeps the pre-exec maximum)
    peak = None
    while True:
        done, st, _ = os.wait4(proc.pid, os.WNOHANG)
        if done:
            status = st
            break
        rss, pos, hwm = _status(proc.pid, "VmRSS"), _read_pos(proc.pid, inp), _status(proc.pid, "VmHWM")
        if rss is not None:
            samples.append((time.perf_counter() - t0, pos, rss))
            peak = hwm if hwm is not None else peak
        time.sleep(interval)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"smallworld score failed ({proc.returncode}): {err[-2000:]}")
    # a sample with no open input counts as "not started" before reading and "finished" after it
    marks = {}
    last_pos = 0
    seen = []
    for t, pos, rss in samples:
        if pos is None:
            pos = size if last_pos > 0 else 0
        last_pos = pos
        seen.append((t, pos, rss))
    for frac in (0.1, 0.5, 1.0):
        upto = [rss for t, pos, rss in seen if pos <= frac * size]
        marks[f"{int(frac * 100)}%"] = max(upto) if upto else None
    t10 = next((t for t, pos, _ in seen if pos >= 0.1 * size), None)
    t_end = next((t for t, pos, _ in seen if pos >= size), wall)
    steady = (0.9 * rows) / (t_end - t10) if t10 is not None and t_end > t10 else None
    return {"cmd": " ".join(cmd), "bytes": size, "rows": rows, "wall_s": wall, "items_per_s": rows / wall,
            "items_per_s_steady": steady, "peak_rss_upto": marks, "peak_rss_child": peak,
            "samples": len(samples), "stderr": err.strip()[-500:],
            "rss_trace_mb": [(round(t, 1), pos, round(rss / 1e6, 1)) for t, pos, rss in seen]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--model", default=None, help="a model directory (default: train a linear urls student)")
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--jsonl-gb", type=float, default=None, help="size of the JSON Lines input (default: --size-gb)")
    ap.add_argument("--variant", choices=("lines", "jsonl", "both"), default="both")
    ap.add_argument("--out-file", action="store_true", help="write the scores to a file, not /dev/null")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--keep", action="store_true", help="keep the generated input files")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="smallworld-1gb-", dir="/tmp"))
    results = {"args": vars(args), "runs": {}}
    try:
        task = load_task("urls")
        dev = D.read_rows(Path(args.data) / "urls" / "dev.jsonl.gz")
        urls = [r["text"] for r in dev]
        model = Path(args.model) if args.model else None
        if model is None:
            tr = PL.stratified_sample(D.read_rows(Path(args.data) / "urls" / "train.jsonl.gz"), 5000, 0)
            m = LinearStudent(task.labels, dict(task.features)).fit(
                [r["text"] for r in tr], PL.onehot(task, [r["label"] for r in tr]))
            model = modelfile.save(m, tmp / "model", {"task": task.to_dict()})
        results["model"] = str(args.model or "linear urls student, 5,000 train rows")
        variants = ["lines", "jsonl"] if args.variant == "both" else [args.variant]
        for v in variants:
            gb = args.size_gb if v == "lines" else (args.jsonl_gb or args.size_gb)
            inp = tmp / ("urls.txt" if v == "lines" else "urls.jsonl")
            t0 = time.perf_counter()
            size, rows = build(inp, urls, int(gb * 1e9), jsonl=(v == "jsonl"))
            print(f"{v}: built {inp} ({size / 1e9:.2f} GB, {rows:,} rows) in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
            out = str(tmp / "scores.jsonl") if args.out_file else "/dev/null"
            r = score_run(model, inp, size, rows, out, args.interval)
            results["runs"][v] = r
            pk = r["peak_rss_upto"]
            print(f"{v}: {rows:,} rows in {r['wall_s']:.1f} s = {r['items_per_s']:,.0f} items/s "
                  f"(steady {r['items_per_s_steady'] or 0:,.0f}/s); peak RSS up to 10% "
                  f"{(pk['10%'] or 0) / 1e6:.0f} MB, 50% {(pk['50%'] or 0) / 1e6:.0f} MB, 100% "
                  f"{(pk['100%'] or 0) / 1e6:.0f} MB, child peak (VmHWM) {(r['peak_rss_child'] or 0) / 1e6:.0f} MB", file=sys.stderr)
            if not args.keep:
                inp.unlink()
                if args.out_file:
                    Path(out).unlink(missing_ok=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print("| input | size | rows | wall s | items/s (steady) | peak RSS at 10% | at 50% | at 100% | child VmHWM |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v, r in results["runs"].items():
        pk = r["peak_rss_upto"]
        mb = lambda x: "n/a" if x is None else f"{x / 1e6:.0f} MB"  # noqa: E731
        print(f"| {'plain lines' if v == 'lines' else 'JSON Lines'} | {r['bytes'] / 1e9:.2f} GB | {r['rows']:,} | "
              f"{r['wall_s']:.1f} | {r['items_per_s']:,.0f} ({r['items_per_s_steady'] or 0:,.0f}) | {mb(pk['10%'])} | "
              f"{mb(pk['50%'])} | {mb(pk['100%'])} | {mb(r['peak_rss_child'])} |")


if __name__ == "__main__":
    main()
