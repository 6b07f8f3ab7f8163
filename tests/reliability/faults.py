"""A fault-injecting OpenAI-compatible completions server, for reliability tests. Loopback only, bounded.

Use it in-process (``FaultServer`` as a context manager, each request's behaviour taken from a script) or as
a separate process that can die mid-run::

    python tests/reliability/faults.py --port P --mode ok --die-after N [--delay 0.05] [--log answers.log]

Modes (per request):
  ok          200 with the first answer token's top log-probabilities ``{" yes": a, " no": b}``, derived from a
              hash of the prompt (deterministic: the same prompt always gets the same answer)
  429         429 with ``Retry-After`` (``retry_after`` seconds, default 0)
  500         500
  slow        sleep ``slow_s`` (past the client's timeout), then answer ok
  malformed   200 with a body that is not JSON
  truncated   200 with a Content-Length larger than the body, then the connection is closed
  nologprobs  200 with text but no log-probabilities
  drop        the connection is closed without an answer

``--die-after N`` answers exactly N requests ok and then exits at once (``os._exit``), dropping whatever is in
flight: a teacher that dies mid-run. Each answered request is appended to ``--log`` as the sha256 of its prompt,
and ``GET /_stats`` returns ``{"answered": n, "hits": n}``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

MODES = ("ok", "429", "500", "slow", "malformed", "truncated", "nologprobs", "drop")
MAX_BODY = 1 << 22  # requests larger than this are refused (the server is bounded)


def answer_for(prompt: str) -> dict[str, float]:
    """The deterministic answer to a prompt: log-probabilities of ' yes' and ' no' from its sha256."""
    h = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "big")
    p_yes = 0.02 + 0.96 * (h / 0xFFFFFFFF)
    return {" yes": math.log(p_yes), " no": math.log(1.0 - p_yes)}


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


class _State:
    def __init__(self, mode: str = "ok", script: list[str] | None = None, delay: float = 0.0, slow_s: float = 2.0,
                 die_after: int | None = None, log: str | None = None, retry_after: str = "0"):
        self.mode = mode
        self.retry_after = retry_after
        self.script = list(script or [])
        self.delay = delay
        self.slow_s = slow_s
        self.die_after = die_after
        self.log = log
        self.hits = 0
        self.answered = 0
        self.prompts: list[str] = []
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    state: _State  # set on a subclass per server
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.rstrip("/").endswith("/_stats") or self.path.rstrip("/").endswith("/models"):
            with self.state.lock:
                body = {"answered": self.state.answered, "hits": self.state.hits, "data": []}
            self._send(200, body)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        st = self.state
        n = int(self.headers.get("content-length") or 0)
        if n > MAX_BODY:
            self._send(413, {"error": "too large"})
            return
        raw = self.rfile.read(n)
        try:
            prompt = json.loads(raw).get("prompt") or ""
        except (ValueError, AttributeError):
            prompt = ""
        with st.lock:
            st.hits += 1
            action = st.script.pop(0) if st.script else st.mode
        if st.delay:
            time.sleep(st.delay)
        if action == "429":
            self._send(429, {"error": "rate limited"}, headers={"Retry-After": st.retry_after})
        elif action == "500":
            self._send(500, {"error": "internal"})
        elif action == "slow":
            time.sleep(st.slow_s)
            self._ok(prompt)
        elif action == "malformed":
            self._raw(200, b'{"choices": [{"text": " yes", "logprobs": {"top_logprobs": [{" yes": -0.1')
        elif action == "truncated":
            body = json.dumps(self._body(prompt)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._close()
        elif action == "nologprobs":
            self._send(200, {"choices": [{"text": " yes"}], "usage": {"prompt_tokens": 10, "completion_tokens": 1}})
        elif action == "drop":
            self._close()
        else:
            self._ok(prompt)

    # -- helpers ----------------------------------------------------------------------------------------
    def _body(self, prompt: str) -> dict:
        return {"choices": [{"text": " yes", "logprobs": {"top_logprobs": [answer_for(prompt)]}}],
                "usage": {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": 1}}

    def _ok(self, prompt: str) -> None:
        st = self.state
        with st.lock:  # answers are serialised, so --die-after N answers exactly N
            if st.die_after is not None and st.answered >= st.die_after:
                self._close()
                return
            self._send(200, self._body(prompt))
            st.answered += 1
            st.prompts.append(prompt)
            if st.log:
                with open(st.log, "a", encoding="utf-8") as f:
                    f.write(prompt_hash(prompt) + "\n")
            if st.die_after is not None and st.answered >= st.die_after:
                os._exit(0)  # die now: in-flight requests get their connections reset

    def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
        self._raw(code, json.dumps(body).encode(), headers)

    def _raw(self, code: int, b: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b)
        self.wfile.flush()

    def _close(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeouts, the faults themselves) is expected here, not news


class FaultServer:
    """In-process server on a free loopback port. ``script`` lists the first requests' modes, then ``mode``."""

    def __init__(self, mode: str = "ok", script: list[str] | None = None, delay: float = 0.0, slow_s: float = 2.0,
                 retry_after: str = "0"):
        assert mode in MODES and all(s in MODES for s in script or [])
        self.state = _State(mode, script, delay, slow_s, retry_after=retry_after)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self._srv = _Server(("127.0.0.1", 0), handler)
        self.port = self._srv.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._th = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def hits(self) -> int:
        return self.state.hits

    @property
    def answered(self) -> int:
        return self.state.answered

    def __enter__(self) -> "FaultServer":
        self._th.start()
        return self

    def __exit__(self, *exc) -> None:
        self._srv.shutdown()
        self._srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(port: int, timeout: float = 1.0) -> dict | None:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=timeout).json()
    except (httpx.HTTPError, ValueError):
        return None


@contextmanager
def spawn(port: int, mode: str = "ok", die_after: int | None = None, delay: float = 0.0, log: str | Path | None = None,
          lifetime: float = 600.0):
    """The server as a separate process on ``port`` (waits until it answers); killed on exit."""
    args = [sys.executable, str(Path(__file__).resolve()), "--port", str(port), "--mode", mode,
            "--delay", str(delay), "--lifetime", str(lifetime)]
    if die_after is not None:
        args += ["--die-after", str(die_after)]
    if log:
        args += ["--log", str(log)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while stats(port, 0.5) is None:
            if proc.poll() is not None:
                raise RuntimeError(f"fault server exited: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                raise RuntimeError("fault server did not start in 30 s")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=MODES, default="ok")
    ap.add_argument("--die-after", type=int, default=None, help="exit after answering this many requests ok")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--slow", type=float, default=2.0, help="seconds a 'slow' answer takes")
    ap.add_argument("--log", default=None, help="append each answered prompt's sha256 here")
    ap.add_argument("--lifetime", type=float, default=600.0, help="exit after this many seconds regardless")
    a = ap.parse_args(argv)
    st = _State(a.mode, None, a.delay, a.slow, a.die_after, a.log)
    srv = _Server(("127.0.0.1", a.port), type("BoundHandler", (Handler,), {"state": st}))
    threading.Timer(a.lifetime, lambda: os._exit(3)).start()  # bounded: never outlives a test run
    srv.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
