"""The HTTP service: the real server (uvicorn via `smallworld serve`) on a loopback port, scores equal to the
Model's and decisions equal to `smallworld score`'s, the token, the limits, malformed input, and a bounded
fuzz of the OpenAPI schema and of raw bodies (no 5xx)."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import ROOT, cli, free_port, start_serve
from smallworld.errors import SmallworldError
from smallworld.serve.http import check_bind, create_app
from smallworld.student.model import Model

EXAMPLES = ROOT / "smallworld" / "examples"
TOKEN = "test-token-0123456789abcdef"
LIMITS = {"max_batch": 100, "max_body_bytes": 65536, "max_item_bytes": 4096}
JSON_H = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    cli("train", "--task", "cmdlines", "--labelled", EXAMPLES / "cmdlines_seed.jsonl",
        "--dev", EXAMPLES / "cmdlines_dev.jsonl", "--teacher", "none", "--out", out)
    return out


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`smallworld serve` on a free loopback port, no token, small limits and a 2 s timeout."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    proc = start_serve(model_dir, port, log, "--max-batch", "100", "--max-body-bytes", "65536",
                       "--max-item-bytes", "4096", "--timeout", "2")
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _texts() -> list[str]:
    rows = [json.loads(line) for f in sorted(EXAMPLES.glob("cmdlines_*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows] + ["", " ", "\x00", "cmd.exe /c \x00whoami", "é ü 中文 🙂", "A" * 3000]


def test_scores_equal_the_scorer_and_decisions_equal_the_cli(server, model_dir, tmp_path):
    texts = _texts()
    sc = Model(model_dir)
    want = sc.scores(texts)
    P = sc.predict_proba(texts)
    single = [server.post("/v1/score", json={"text": t}).json() for t in texts]
    assert [r["score"] for r in single] == want.tolist()  # exact: JSON floats round-trip
    assert all(list(r["probs"].values()) == pytest.approx(p.tolist(), abs=1e-12) for r, p in zip(single, P))
    assert all(list(r["probs"]) == list(sc.labels) for r in single)
    for mode in ("best_guess", "high_confidence"):
        r = server.post(f"/v1/score/batch?mode={mode}", json={"items": [{"id": f"r{i}", "text": t}
                                                                        for i, t in enumerate(texts)]})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert [x["id"] for x in res] == [f"r{i}" for i in range(len(texts))]
        assert [x["score"] for x in res] == want.tolist()
        f = tmp_path / "in.jsonl"
        f.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
        ref = [json.loads(line) for line in cli("score", model_dir, f, "--mode", mode).stdout.splitlines()]
        assert [x["decision"] for x in res] == [x["decision"] for x in ref]
        assert [round(x["score"], 6) for x in res] == [x["score"] for x in ref]
    assert server.post("/v1/score/batch", json={"items": []}).json() == {"results": []}
    ints = server.post("/v1/score/batch", json={"items": [{"id": 7, "text": "ls"}, {"text": "ls"}]}).json()
    assert [x["id"] for x in ints["results"]] == [7, None]


def test_model_health_and_metrics(server, model_dir):
    header = json.loads((model_dir / "model.json").read_text())
    m = server.get("/v1/model").json()
    assert m["task"] == "cmdlines" and m["labels"] == header["labels"] and m["positive"] == "malicious"
    assert m["thresholds"] == header["thresholds"] and m["weights_sha256"] == header["weights_sha256"]
    assert m["limits"]["max_batch"] == 100
    assert server.get("/healthz").json()["status"] == "ok"

    def counts():
        t = server.get("/metrics").text
        assert "# TYPE smallworld_http_request_duration_seconds histogram" in t

        def val(pat):
            m_ = re.search(pat + r" ([0-9.e+]+)$", t, re.M)
            return float(m_.group(1)) if m_ else 0.0
        return (val(re.escape('smallworld_http_requests_total{endpoint="/v1/score",status="200"}')),
                val(re.escape('smallworld_http_requests_total{endpoint="/v1/score",status="422"}')),
                val(re.escape('smallworld_http_requests_total{endpoint="other",status="404"}')),
                val("smallworld_items_scored_total"),
                val(re.escape('smallworld_http_request_duration_seconds_count{endpoint="/v1/score"}')))

    before = counts()
    for _ in range(5):
        assert server.post("/v1/score", json={"text": "whoami"}).status_code == 200
    assert server.post("/v1/score", json={"text": 5}).status_code == 422
    assert server.get("/no/such/path").status_code == 404
    assert server.post("/v1/score/batch", json={"items": [{"text": "a"}] * 3}).status_code == 200
    after = counts()
    assert [a - b for a, b in zip(after, before)] == [5, 1, 1, 8, 6]


def test_limits_and_malformed_requests_on_the_real_server(server, model_dir):
    post = server.post
    # size: by Content-Length (refused before reading), while streaming (chunked), per batch and per item
    r = post("/v1/score", content=b'{"text": "' + b"a" * 70_000 + b'"}', headers=JSON_H)
    assert r.status_code == 413 and "65536" in r.json()["error"]

    def chunks():
        yield b'{"text": "'
        for _ in range(20):
            yield b"a" * 4096
        yield b'"}'
    r = post("/v1/score", content=chunks(), headers=JSON_H)
    assert r.status_code == 413
    assert post("/v1/score/batch", json={"items": [{"text": "a"}] * 101}).status_code == 413
    assert post("/v1/score/batch", json={"items": [{"text": "a"}] * 100}).status_code == 200
    assert post("/v1/score", json={"text": "é" * 2049}).status_code == 413  # 4098 bytes
    assert post("/v1/score/batch", json={"items": [{"text": "a"}, {"text": "b" * 5000}]}).json()["error"] \
        .startswith("items[1].text")
    # malformed: every answer a 4xx with a JSON error, none a 500
    cases = [b'{"text": ', b"", b"[]", b"null", b'{"text": 1}', b'{"text": null}', b'{"text": ["a"]}',
             b'{"txt": "a"}', b'{"text": "a\x00b"}',  # a raw NUL is not allowed inside a JSON string
             b'{"text": "\xff\xfe"}', b"\xff\xfe\x00{", b"[" * 10_000 + b"]" * 10_000]  # bad UTF-8, deep nesting
    for body in cases:
        r = post("/v1/score", content=body, headers=JSON_H)
        assert r.status_code in (400, 422), (body[:40], r.status_code, r.text)
        assert "error" in r.json()
    for body in (b'{"items": 1}', b'{"items": [1]}', b'{"items": [{"id": true, "text": "a"}]}',
                 b'{"items": [{"id": 1.5, "text": "a"}]}', b'{"items": [{"text": "a"}]', b'{"text": "a"}'):
        r = post("/v1/score/batch", content=body, headers=JSON_H)
        assert r.status_code == 422, (body, r.text)
    assert post("/v1/score", content=b'{"text": "a"}').status_code == 415  # no JSON content type
    assert post("/v1/score", content=b'{"text": "a"}', headers={"content-type": "text/plain"}).status_code == 415
    assert post("/v1/score?mode=loose", json={"text": "a"}).status_code == 422
    assert server.get("/v1/score").status_code == 405
    # escaped NUL and lone surrogates are valid JSON: scored as the Model scores them (bytes, surrogatepass)
    sc = Model(model_dir)
    for body, text in ((b'{"text": "a\\u0000b"}', "a\x00b"), (b'{"text": "x\\ud800y"}', "x\ud800y")):
        r = post("/v1/score", content=body, headers=JSON_H)
        assert r.status_code == 200 and r.json()["score"] == sc.scores([text])[0]
    r = post("/v1/score/batch", content=b'{"items": [{"id": "\\udc80", "text": "a"}]}', headers=JSON_H)
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "\udc80"


def test_a_slow_body_gets_408(server):
    host, port = server.base_url.host, server.base_url.port
    with socket.create_connection((host, port), timeout=15) as s:
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"text\": ")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]


def test_token_is_required_when_set(model_dir):
    c = TestClient(create_app(model_dir, token=TOKEN), raise_server_exceptions=False)
    body = {"text": "whoami"}
    r = c.post("/v1/score", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    for auth in ("Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer "):
        assert c.post("/v1/score", json=body, headers={"Authorization": auth}).status_code == 401, auth
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert c.post("/v1/score", json=body, headers=ok).status_code == 200
    assert c.post("/v1/score", json=body, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert c.post("/v1/score/batch", json={"items": [body]}).status_code == 401
    assert c.get("/v1/model").status_code == 401 and c.get("/metrics").status_code == 401
    assert c.get("/openapi.json").status_code == 401
    assert c.get("/v1/model", headers=ok).status_code == 200
    assert c.get("/healthz").status_code == 200  # probes need no token
    # a big unauthenticated body is refused before it is read
    assert c.post("/v1/score", content=b"x" * (1 << 20), headers=JSON_H).status_code == 401
    assert 'status="401"' in c.get("/metrics", headers=ok).text


def test_no_token_off_loopback(model_dir):
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"):
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "10.1.2.3", "192.168.0.10", "example.com", ""):
        with pytest.raises(SmallworldError, match="without a bearer token"):
            check_bind(host, None)
        with pytest.raises(SmallworldError, match="at least 16"):
            check_bind(host, "short")
        check_bind(host, TOKEN)
    r = cli("serve", model_dir, "--host", "0.0.0.0", "--port", str(free_port()), env={"SMALLWORLD_TOKEN": ""},
            check=False, timeout=60)
    assert r.returncode == 2 and "refusing to serve on '0.0.0.0' without a bearer token" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("serve", model_dir, "--host", "0.0.0.0", "--token-env", "MY_TOKEN", env={"MY_TOKEN": "abc"},
            check=False, timeout=60)
    assert r.returncode == 2 and "MY_TOKEN" in r.stderr
    r = cli("serve", model_dir.parent / "nope", check=False, timeout=60)
    assert r.returncode == 2 and "not a smallworld model directory" in r.stderr
    with pytest.raises(SmallworldError):
        create_app(model_dir, token="")


# -- fuzzing: nothing a client sends gets a 5xx ---------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_app(model_dir):
    return create_app(model_dir, **LIMITS)


def _random_str(rng: random.Random) -> str:
    return "".join(chr(rng.choice([0, 0x41, 0x20, 0xe9, 0x4e2d, 0xd800, 0x1f642, rng.randrange(0x110000)]))
                   for _ in range(rng.randrange(12)))


def _random_json(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "bool", "null"] + (["list", "dict", "item", "items"] if depth < 4 else [])
    k = rng.choice(kinds)
    if k == "str":
        return _random_str(rng)
    if k == "int":
        return rng.choice([0, -1, 2 ** 70, rng.randrange(-10 ** 6, 10 ** 6)])
    if k == "float":
        return rng.choice([0.5, -1e308, 1e-320, rng.random()])
    if k == "bool":
        return rng.random() < 0.5
    if k == "null":
        return None
    if k == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    if k == "dict":
        return {rng.choice(["text", "items", "id", "x", ""]): _random_json(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    if k == "item":
        return {"text": _random_json(rng, depth + 1), "id": _random_json(rng, depth + 1)}
    return {"items": [_random_json(rng, depth + 1) for _ in range(rng.randrange(6))]}


def _mutate(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rng.randrange(1, 4)):
        op, i = rng.randrange(3), rng.randrange(len(b) + 1)
        if op == 0:
            b[i:i] = bytes([rng.randrange(256)])
        elif op == 1 and b:
            del b[min(i, len(b) - 1)]
        elif b:
            b[min(i, len(b) - 1)] = rng.choice([0, 0x80, 0xff, 0xc3, 0x22, 0x5c, 0x7b])
    return bytes(b)


def test_random_bodies_never_get_a_5xx(fuzz_app):
    """300 seeded requests: random JSON shapes and byte-mutated bodies, on both scoring endpoints."""
    c = TestClient(fuzz_app, raise_server_exceptions=False)
    rng = random.Random(1234)
    statuses = {}

    def item():  # well-formed but for a wrong type now and then
        return {"text": _random_json(rng, 4) if rng.random() < 0.1 else _random_str(rng),
                **({"id": _random_json(rng, 4)} if rng.random() < 0.5 else {})}

    for n in range(300):
        path = rng.choice(["/v1/score", "/v1/score/batch"])
        if rng.random() < 0.5:
            v = item() if path == "/v1/score" else {"items": [item() for _ in range(rng.randrange(8))]}
        else:
            v = _random_json(rng)
        body = (json.dumps(v).encode() if rng.random() < 0.5 else  # raw UTF-8, lone surrogates as invalid bytes
                json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if n % 3 == 0:
            body = _mutate(rng, body)
        path += rng.choice(["", "", "", "?mode=high_confidence", "?mode=x"])
        r = c.post(path, content=body, headers=JSON_H)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (path, body[:200], r.text)
        assert isinstance(r.json(), dict)
    assert statuses.get(200, 0) > 10 and statuses.get(422, 0) > 10, statuses


def test_openapi_schema_fuzz(fuzz_app):
    """Schemathesis on the app's OpenAPI schema, its default checks (no 5xx, documented status codes and
    bodies, schema-violating requests rejected): 150 positive and 150 negative generated cases, seeded."""
    schemathesis = pytest.importorskip("schemathesis", reason="the test extra installs schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=schema.as_strategy(generation_mode=mode))
        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate()

        check()


def test_a_slow_item_gets_503_and_other_clients_are_answered_meanwhile(data_dir, tmp_path):
    """An item is scored off the event loop with the request's time limit: a 2 MB page whose parsing takes
    longer than --timeout gets a 503, and /healthz is answered while it is being scored (the order of events
    is asserted, not a duration)."""
    import gzip
    import threading

    rows = [json.loads(x) for x in gzip.open(data_dir / "html" / "train.jsonl.gz", "rt")][:300]
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("train", "--task", "html", "--labelled", seed, "--teacher", "none", "--out", tmp_path / "m")
    port = free_port()
    proc = start_serve(tmp_path / "m", port, tmp_path / "log", "--timeout", "0.3", "--max-item-bytes", str(4 << 20),
                       "--max-body-bytes", str(8 << 20))
    page = ("<form action='http://x.example/y'><input type=password name=p></form>" * 40000)[:2_000_000]
    events: list[str] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            assert c.post("/v1/score", json={"text": "<html><title>ok</title></html>"}).status_code == 200

            def slow():
                events.append("slow sent")
                events.append(f"slow answered {c.post('/v1/score', json={'text': page}).status_code}")

            t = threading.Thread(target=slow)
            t.start()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c2:
                while t.is_alive():
                    if c2.get("/healthz").status_code == 200 and "slow sent" in events and len(events) == 1:
                        events.append("healthz answered")
            t.join()
            assert events[-1] == "slow answered 503", events
            assert "healthz answered" in events[:-1], events
            assert c.post("/v1/score", json={"text": "<html><title>ok</title></html>"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
