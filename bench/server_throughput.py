"""Teacher throughput: a local llama.cpp server (`python -m llama_cpp.server`, the embedded teacher's own GGUF,
2 threads) at concurrency 1, 2 and 4, against the embedded teacher, on the same prompts, with empty caches.

    .venv/bin/python bench/server_throughput.py --data ../shared/data [--n 40] [--threads 2]

Prompts: `cmdlines` telemetry rows with the fixed few-shot prompt (a shared prefix). Reports items/s and the
ratio to the embedded teacher measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from smallworld import data as D
from smallworld.teacher import prompting
from smallworld.pipeline import stratified_sample
from smallworld.tasks import load_task
from smallworld.teacher import ResponseCache
from smallworld.teacher.embedded import EmbeddedTeacher, model_path
from smallworld.teacher.openai import OpenAITeacher


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    task = load_task("cmdlines")
    d = Path(a.data) / "cmdlines"
    seed = stratified_sample(list(D.iter_rows(str(d / "train.jsonl.gz"))), 500, 0)
    items = [r["text"] for _, r in zip(range(a.n * 4), D.iter_rows(str(d / "telemetry.jsonl.gz")))]
    demos = prompting.Demonstrations(task, seed, k=3, mode="fixed")
    choices = [task.answers[lab] for lab in task.labels]
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        emb = EmbeddedTeacher(n_threads=a.threads, cache=ResponseCache(Path(tmp) / "e.sqlite"))
        prompts = prompting.build_prompts(task, items[:a.n], demos)
        emb.classify(prompts[:1], choices)  # load the model and the shared prefix
        t0 = time.perf_counter()
        emb.classify(prompts[1:], choices)
        res["embedded"] = (len(prompts) - 1) / (time.perf_counter() - t0)
        emb.close()
        port = free_port()
        log = open(Path(tmp) / "server.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--host",
                                 "127.0.0.1", "--port", str(port), "--n_threads", str(a.threads), "--n_ctx", "4096"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/v1"
            for _ in range(600):
                try:
                    if httpx.get(url + "/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            for k, c in enumerate((1, 2, 4)):
                t = OpenAITeacher(url, concurrency=c, cache=ResponseCache(Path(tmp) / f"s{c}.sqlite"), timeout=300)
                # different items per level, so the server's own prompt cache cannot replay answers
                ps = prompting.build_prompts(task, items[a.n * (k + 1) - 1:a.n * (k + 2) - 1] or items[:a.n], demos)
                t.classify(ps[:1], choices)
                t0 = time.perf_counter()
                t.classify(ps[1:], choices)
                res[f"server, concurrency {c}"] = (len(ps) - 1) / (time.perf_counter() - t0)
                t.close()
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"| teacher ({a.threads} threads, fixed prompt, {a.n - 1} cmdlines items each) | items/s | vs embedded |")
    print("|---|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v:.2f} | {v / res['embedded']:.2f}x |")


if __name__ == "__main__":
    main()
