"""Peak memory of `smallworld label`'s core as the input grows: does it stay flat per row?

Run from the repository root:

    .venv/bin/python bench/label_memory.py --data ../shared/data --n 10000,100000

``label_rows`` (what ``smallworld label`` and ``smallworld.label`` run) on N cmdline rows (the telemetry and
pool rows, repeated with a suffix so no two are equal) with a 500-row seed, the ``hybrid`` prompt (per-item
retrieval: the item x seed similarities are what once grew as a dense N x seed matrix) and the
``zero+fixed`` ensemble. The teacher here is an *instrument*, not a stand-in in a test: it answers every
prompt with the same probabilities at once, so the run measures smallwold's own memory (prompts,
similarities, results) rather than the model's; a real teacher adds its own fixed footprint.

Python allocations are traced (``tracemalloc``: peak during the call, above what the rows themselves hold)
and the process's peak RSS is read from ``/proc/self/status`` (``VmHWM``). Results go to
``bench/out/label_memory.json``. Run each N in its own process (``--n`` spawns one per value).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def one(data: Path, n: int, prompt: str) -> dict:
    from smallworld.labeller import label_rows
    from smallworld.pipeline import stratified_sample
    from smallworld.tasks import load_task
    from smallworld.teacher.base import Teacher
    from smallworld.teacher.cache import ResponseCache

    class Instant(Teacher):
        model_id = "instant"

        def classify(self, prompts, choices, on_done=None):
            for i in range(len(prompts)) if on_done else ():
                on_done(i)
            return [[1.0 / len(choices)] * len(choices) for _ in prompts]

    task = load_task("cmdlines")
    d = data / "cmdlines"
    train = [json.loads(x) for x in gzip.open(d / "train.jsonl.gz", "rt")]
    seed = stratified_sample(train, 500, 0)
    base = [json.loads(x)["text"] for f in ("telemetry.jsonl.gz", "pool.jsonl.gz") for x in gzip.open(d / f, "rt")]
    rows = [{"id": str(i), "text": f"{base[i % len(base)]} #{i // len(base)}"} for i in range(n)]
    rows_kb = _hwm_kb()
    tracemalloc.start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = label_rows(task, rows, Instant(cache=ResponseCache(Path(tmp) / "c.sqlite")), seed, prompt=prompt,
                         calibration=100)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(res.probs) == n
    return {"n": n, "prompt": prompt, "seconds": round(secs, 2), "traced_peak_mb": round(peak / 2**20, 1),
            "traced_peak_bytes_per_row": round(peak / n), "rss_before_kb": rows_kb, "rss_peak_kb": _hwm_kb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--n", default="10000,100000")
    ap.add_argument("--prompt", default="hybrid,zero+fixed")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(Path(a.data), int(a.n), a.prompt)))
        return
    out = []
    for prompt in a.prompt.split(","):
        for n in a.n.split(","):
            r = subprocess.run([sys.executable, __file__, "--one", "--data", a.data, "--n", n, "--prompt", prompt],
                               capture_output=True, text=True, check=True)
            out.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(json.dumps(out[-1]), flush=True)
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "label_memory.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
