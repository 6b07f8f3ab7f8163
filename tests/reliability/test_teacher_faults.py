"""Failing teachers, beyond tests/test_openai_teacher.py: truncated bodies, Retry-After honoured, faults under
concurrency (every prompt answered once, correctly), answers received before a failure kept, persistent faults
through the CLI (one clear error line), and a teacher server killed mid-run: nothing lost, nothing asked twice."""

from __future__ import annotations

import json
import math
import re
import sqlite3

import pytest

from conftest import cli
from faults import FaultServer, answer_for, free_port, spawn
from smallworld.errors import TeacherError
from smallworld.teacher import ResponseCache
from smallworld.teacher.openai import OpenAITeacher

CHOICES = ["yes", "no"]


def _teacher(url, tmp_path, **kw) -> OpenAITeacher:
    kw = {"backoff": 0.01, "timeout": 1.0, "concurrency": 1, "retries": 3} | kw
    return OpenAITeacher(url, cache=ResponseCache(tmp_path / "f.sqlite"), **kw)


def _expected(prompt: str) -> float:
    a = answer_for(prompt)
    return math.exp(a[" yes"]) / (math.exp(a[" yes"]) + math.exp(a[" no"]))


def test_truncated_body_is_retried(tmp_path):
    """A body shorter than its Content-Length (the connection closed mid-answer) is a transport error: retried."""
    with FaultServer(script=["truncated", "truncated"]) as srv:
        t = _teacher(srv.url, tmp_path)
        res = t.classify(["Malicious:"], CHOICES)
    assert res[0][0] == pytest.approx(_expected("Malicious:"))
    assert t.usage.retries == 2 and t.usage.calls == 1 and srv.hits == 3


def test_retry_after_is_honoured(tmp_path):
    with FaultServer(script=["429"], retry_after="1") as srv:
        t = _teacher(srv.url, tmp_path)
        waits: list[float] = []
        t._sleep = waits.append  # what the client asks to wait, recorded (no clock in the test)
        t.classify(["Malicious:"], CHOICES)
    assert len(waits) == 1 and 0.75 <= waits[0] <= 1.25, waits  # 1 s with +-25% jitter, not the 0.01 s backoff
    assert t.usage.retries == 1 and srv.hits == 2


@pytest.mark.parametrize("mode,needle", [
    ("429", "HTTP 429"), ("500", "HTTP 500"), ("slow", "timed out"), ("malformed", "malformed JSON"),
    ("truncated", "failed"), ("drop", "failed"),
])
def test_persistent_fault_gives_up_with_a_clear_error(tmp_path, mode, needle):
    with FaultServer(mode=mode, slow_s=1.5) as srv:
        t = _teacher(srv.url, tmp_path, retries=2, timeout=0.5)
        with pytest.raises(TeacherError, match=f"{needle}.*gave up after 2 retries"):
            t.classify(["a", "b"], CHOICES)
    assert srv.hits == 3  # one prompt, 1 + 2 retries, then stop: the second prompt is never sent
    assert t.usage.failures == 1 and t.usage.calls == 0 and len(t.cache) == 0


def test_faults_under_concurrency_every_prompt_answered_once_and_correctly(tmp_path):
    script = ["429", "500", "malformed", "truncated", "drop", "slow", "500", "429"] * 2
    prompts = [f"Command line: cmd {i}\nMalicious:" for i in range(40)]
    with FaultServer(script=script, slow_s=3.0) as srv:  # timeout margins for a busy machine: exact counts below
        t = _teacher(srv.url, tmp_path, concurrency=4, retries=10, timeout=1.5)
        res = t.classify(prompts, CHOICES)
    assert [r[0] for r in res] == pytest.approx([_expected(p) for p in prompts])
    assert t.usage.calls == 40 and len(t.cache) == 40 and t.usage.failures == 0
    # every fault cost exactly one retry; a slow answer comes after the client gave up on it (it may or may not
    # reach the closed socket), so those prompts are the only ones the server can have answered twice
    assert srv.hits == 40 + len(script) and t.usage.retries == len(script)
    assert 40 <= srv.answered <= 40 + script.count("slow") and set(srv.state.prompts) == set(prompts)


def test_answers_received_before_a_failure_stay_cached(tmp_path):
    with FaultServer(script=["ok"] * 5 + ["500"] * 50) as srv:
        t = _teacher(srv.url, tmp_path, retries=1)
        prompts = [f"p{i}" for i in range(10)]
        with pytest.raises(TeacherError):
            t.classify(prompts, CHOICES)
    assert len(t.cache) == 5 and t.usage.calls == 5
    with FaultServer() as srv:  # the server is back: only the rest is asked
        t2 = OpenAITeacher(srv.url, cache=ResponseCache(tmp_path / "f.sqlite"), backoff=0.01, concurrency=3)
        t2.model_id = t.model_id  # same teacher, new port
        res = t2.classify(prompts, CHOICES)
    assert all(r is not None for r in res)
    assert t2.usage.cache_hits == 5 and t2.usage.calls == 5 and srv.answered == 5


def test_missing_logprobs_fall_back_to_samples_and_are_cached(tmp_path):
    with FaultServer(mode="nologprobs") as srv:
        t = _teacher(srv.url, tmp_path, samples=3)
        res = t.classify(["a", "b"], CHOICES)
        assert srv.hits == 1 + 3 + 3  # one try with logprobs, then 3 samples per prompt
    assert res[0][0] == pytest.approx(3.5 / 4.0) and len(t.cache) == 2
    again = _teacher(srv.url, tmp_path, samples=3)
    again.classify(["a", "b"], CHOICES)
    assert again.usage.calls == 0 and again.usage.cache_hits == 2


# -- through the CLI ------------------------------------------------------------------------------------------
def _items(tmp_path, n: int):
    p = tmp_path / "items.jsonl"
    p.write_text("".join(json.dumps({"id": f"i{i}", "text": f"cmd.exe /c task-{i} --flag {i * 7}"}) + "\n"
                         for i in range(n)))
    return p


def _usage(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) calls, (\d+) cache hits", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


def _rows(cache) -> int:
    with sqlite3.connect(cache) as db:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


@pytest.mark.parametrize("mode", ["429", "500", "slow", "malformed", "truncated", "drop"])
def test_cli_label_with_a_failing_teacher_is_one_clear_error(tmp_path, mode):
    items = _items(tmp_path, 3)
    with FaultServer(mode=mode, slow_s=2.0) as srv:
        r = cli("label", items, "--task", "cmdlines", "--teacher", srv.url, "--out", tmp_path / "l.jsonl",
                "--cache", tmp_path / "c.sqlite", "--retries", 1, "--timeout", 0.5, "--concurrency", 1,
                check=False, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and srv.url in errors[0] and "gave up after 1 retries" in errors[0], r.stderr[-2000:]
    assert _usage(r.stderr) == (0, 0)  # the ledger is still printed
    assert not (tmp_path / "l.jsonl").exists()


def test_teacher_killed_mid_run_loses_nothing_and_asks_nothing_twice(tmp_path):
    """`label` against a teacher server that dies after N answers: a clear error, all N answers cached; a rerun
    against the restarted server asks only the rest."""
    n_items, die_after = 30, 12
    items = _items(tmp_path, n_items)
    cache, log = tmp_path / "c.sqlite", tmp_path / "answers.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    args = ["label", items, "--task", "cmdlines", "--teacher", url, "--out", tmp_path / "l.jsonl", "--cache", cache,
            "--concurrency", 4, "--retries", 2, "--timeout", 5]
    with spawn(port, "ok", die_after=die_after, delay=0.05, log=log) as proc:
        r = cli(*args, check=False, timeout=300)
        assert proc.wait(30) == 0  # it died by itself, after its N answers
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and url in errors[0] and "gave up after 2 retries" in errors[0], r.stderr[-2000:]
    answered = log.read_text().split()
    assert len(answered) == die_after
    assert _rows(cache) == die_after  # zero lost: every answer sent before the death is in the cache
    calls, hits = _usage(r.stderr)
    assert calls == die_after and hits == 0

    with spawn(port, "ok", delay=0.01, log=log):
        r = cli(*args, timeout=300)
    calls, hits = _usage(r.stderr)
    assert hits == die_after and calls == n_items - die_after  # zero asked twice
    answered = log.read_text().split()
    assert len(answered) == len(set(answered)) == n_items  # the server side agrees
    assert _rows(cache) == n_items
    out = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert sorted(o["id"] for o in out) == sorted(f"i{i}" for i in range(n_items))
