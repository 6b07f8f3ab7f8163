"""Load test of ``smallworld serve`` with wrk: single items and batches, loopback only, bounded in time.

    .venv/bin/python bench/load_test.py --data ../shared/data [--model MODEL_DIR] [--duration 10] \
        [--connections 8] [--threads 1] [--batch 100]

Starts the service on a free 127.0.0.1 port (``python -m smallworld.cli serve``), drives ``POST /v1/score``
and then ``POST /v1/score/batch`` (BATCH items per request) with wrk for DURATION seconds each, using a Lua
script that cycles through real request bodies (cmdlines telemetry with --data, else the packaged examples),
and prints requests/s, items/s and p50/p99 latency, then checks the service's /metrics agree. Without
--model it trains a seed-only cmdlines model from the packaged examples first (a few seconds). Needs wrk
(Debian: ``apt-get install -y wrk``). wrk is closed-loop: latency includes queueing behind CONNECTIONS
requests in flight. The server is one process; on a 2-core machine, wrk and the server share the cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "smallworld" / "examples"

LUA = r"""
local bodies = {}
local i = 0
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json"}

init = function(args)
  for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
end

request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", path, headers, bodies[i])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "non2xx": %%d, "socket_errors": %%d}\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts(data: str | None, n: int = 5000) -> list[str]:
    path = Path(data) / "cmdlines" / "telemetry.jsonl.gz" if data else None
    if path and path.exists():
        out = []
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                out.append(json.loads(line)["text"])
                if len(out) >= n:
                    break
        return out
    return [json.loads(line)["text"] for f in sorted(EXAMPLES.glob("cmdlines_*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_bodies(path: Path, items: list[str], batch: int) -> None:
    with open(path, "w", encoding="ascii") as f:
        if batch == 1:
            for t in items:
                f.write(json.dumps({"text": t}) + "\n")
        else:
            k = 0
            for _ in range(max(1, min(200, len(items) // batch))):
                chunk = [{"id": k + j, "text": items[(k + j) % len(items)]} for j in range(batch)]
                k += batch
                f.write(json.dumps({"items": chunk}) + "\n")


def run_wrk(url: str, path: str, bodies: Path, tmp: Path, args) -> dict:
    script = tmp / f"post{path.replace('/', '_')}.lua"
    script.write_text(LUA % {"path": path, "bodies": bodies})
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--timeout", "10s", "-s", str(script), url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    m = re.search(r"^RESULT (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise SystemExit(f"wrk failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return json.loads(m.group(1))


def metric(text: str, name: str, **labels) -> float:
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.escape(name + ("{" + sel + "}" if sel else "")) + r" ([0-9.e+]+)$"
    m = re.search(pat, text, re.M)
    return float(m.group(1)) if m else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model directory (default: train one from the packaged examples)")
    ap.add_argument("--data", help="the shared data directory (request bodies from cmdlines telemetry)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per endpoint (at most 60)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    args.duration = max(1, min(args.duration, 60))
    if shutil.which("wrk") is None:
        print("wrk is not installed: this load test drives the service with wrk (a real HTTP load generator).\n"
              "Install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`, then rerun.",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="smallworld-load-"))
    try:
        model = args.model
        if not model:
            model = str(tmp / "model")
            subprocess.run([sys.executable, "-m", "smallworld.cli", "train", "--task", "cmdlines",
                            "--labelled", str(EXAMPLES / "cmdlines_seed.jsonl"),
                            "--dev", str(EXAMPLES / "cmdlines_dev.jsonl"), "--teacher", "none", "--out", model],
                           check=True, capture_output=True, cwd=ROOT)
        items = texts(args.data)
        single, batch = tmp / "single.jsonl", tmp / "batch.jsonl"
        write_bodies(single, items, 1)
        write_bodies(batch, items, args.batch)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "SMALLWORLD_TOKEN"}
        log = open(tmp / "server.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "smallworld.cli", "serve", model, "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            deadline = time.time() + 60
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"server exited:\n{(tmp / 'server.log').read_text()[-2000:]}")
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise SystemExit("server did not start in 60 s")
                time.sleep(0.2)
            print(f"model {model}; {len(items)} distinct texts; wrk -t{args.threads} -c{args.connections} "
                  f"-d{args.duration}s against {url}; {os.cpu_count()} cores shared by wrk and the server")
            print(f"{'endpoint':<26} {'req/s':>9} {'items/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
                  f"{'errors':>7}")
            total_items = 0
            for path, bodies, per in (("/v1/score", single, 1), ("/v1/score/batch", batch, args.batch)):
                r = run_wrk(url, path, bodies, tmp, args)
                rps = r["requests"] / (r["duration_us"] / 1e6)
                total_items += r["requests"] * per
                label = path if per == 1 else f"{path} ({per})"
                print(f"{label:<26} {rps:>9.0f} {rps * per:>10.0f} {r['p50_us'] / 1e3:>8.2f} "
                      f"{r['p90_us'] / 1e3:>8.2f} {r['p99_us'] / 1e3:>8.2f} {r['non2xx'] + r['socket_errors']:>7}")
                if r["non2xx"]:
                    print(f"  {r['non2xx']} non-2xx responses: see {tmp / 'server.log'}", file=sys.stderr)
            m = httpx.get(url + "/metrics", timeout=5).text
            scored = metric(m, "smallworld_items_scored_total")
            print(f"server /metrics: {scored:.0f} items scored (wrk counted {total_items} in completed requests; "
                  f"requests cut off at the end are counted by the server only)")
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
