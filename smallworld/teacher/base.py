"""What every teacher does: answer a completion prompt with a probability for each answer word.

A teacher implements ``_ask(prompt) -> (answer, usage)`` where the answer is JSON data (the first answer
token's top log-probabilities, or sampled answers). ``classify`` adds the durable cache, the usage ledger,
bounded concurrency and the conversion to class probabilities. Answers are cached raw, as they arrive, so
nothing paid for is lost even when parsing them fails.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable, Sequence

import numpy as np

from ..errors import TeacherError
from .cache import ResponseCache, make_key
from .ledger import Usage

MIN_MASS = 0.5  # answers whose matched probability mass is below this are unusable (counted, not trained on)


def probs_from_top(top: Sequence[tuple[str, float]], choices: Sequence[str]) -> tuple[np.ndarray, float]:
    """Class probabilities from one token position's top log-probabilities.

    A token matches a choice when, stripped and lowercased, it is a non-empty prefix of that choice's answer
    word and of no other. Returns the normalised probabilities and the matched mass (before normalising).
    """
    words = [c.strip().lower() for c in choices]
    p = np.zeros(len(words))
    for tok, lp in top:
        t = tok.strip().lower()
        if not t or lp is None:
            continue
        hits = [i for i, w in enumerate(words) if w.startswith(t)]
        if len(hits) == 1:
            p[hits[0]] += math.exp(lp)
    mass = float(p.sum())
    if mass <= 0:
        return np.full(len(words), 1.0 / len(words)), 0.0
    return p / mass, mass


def probs_from_samples(samples: Sequence[str], choices: Sequence[str]) -> tuple[np.ndarray, float]:
    """Class probabilities estimated from sampled answers (for servers that return no log-probabilities)."""
    words = [c.strip().lower() for c in choices]
    counts = np.zeros(len(words))
    for s in samples:
        first = (s or "").strip().lower().split()
        if not first:
            continue
        hits = [i for i, w in enumerate(words) if w.startswith(first[0].strip(".,:;!")) or first[0].startswith(w)]
        if len(hits) == 1:
            counts[hits[0]] += 1
    n = len(samples)
    mass = float(counts.sum() / n) if n else 0.0
    # add-half smoothing so a few samples never give exactly 0 or 1
    return (counts + 0.5) / (counts.sum() + 0.5 * len(words)), mass


class Teacher:
    """Base class. Subclasses set ``model_id`` and implement ``_ask`` (and optionally ``_generate``)."""

    model_id = "teacher"
    concurrency = 1
    min_mass = MIN_MASS

    def __init__(self, cache: ResponseCache | None = None, usage: Usage | None = None):
        self.cache = cache if cache is not None else ResponseCache()
        self.usage = usage if usage is not None else Usage(model=self.model_id)
        if not self.usage.model:
            self.usage.model = self.model_id

    def params(self) -> dict:
        """Parameters that change answers; part of the cache key."""
        return {}

    def _ask(self, prompt: str) -> tuple[dict, dict]:
        raise NotImplementedError

    def _parse(self, answer: dict, choices: Sequence[str]) -> tuple[np.ndarray, float]:
        if "top" in answer:
            return probs_from_top([tuple(x) for x in answer["top"]], choices)
        if "samples" in answer:
            return probs_from_samples(answer["samples"], choices)
        return np.full(len(choices), 1.0 / len(choices)), 0.0

    def ask_cached(self, prompt: str) -> dict:
        key = make_key(self.model_id, "classify", prompt, self.params())
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.add(cache_hits=1)
            return hit
        answer, use = self._ask(prompt)
        self.cache.put(key, self.model_id, "classify", answer)  # durable before anything else happens
        self.usage.add(calls=1, prompt_tokens=use.get("prompt_tokens", 0),
                       completion_tokens=use.get("completion_tokens", 0), seconds=use.get("seconds", 0.0),
                       retries=use.get("retries", 0))
        return answer

    def classify(self, prompts: Sequence[str], choices: Sequence[str],
                 on_done: Callable[[int], None] | None = None, stop_on_error: bool = True) -> list[np.ndarray | None]:
        """Probabilities per prompt (None where the answer was unusable or the call failed for good).

        Calls run with at most ``concurrency`` in flight (back-pressure: a new one starts when one ends).
        ``on_done(i)`` is called as each prompt finishes (progress bars). A teacher that keeps failing raises
        TeacherError after the in-flight calls finish, so every answer already received stays cached.
        """
        out: list[np.ndarray | None] = [None] * len(prompts)
        first_error: list[Exception] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            try:
                ans = self.ask_cached(prompts[i])
            except TeacherError as e:
                self.usage.add(failures=1)
                with lock:
                    first_error.append(e)
                return
            p, mass = self._parse(ans, choices)
            if mass < self.min_mass:
                self.usage.add(unusable=1)
            else:
                out[i] = p
            if on_done:
                on_done(i)

        if self.concurrency <= 1:
            for i in range(len(prompts)):
                one(i)
                if first_error and stop_on_error:
                    raise first_error[0]
            return out
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            pending = set()
            it = iter(range(len(prompts)))
            for i in it:
                pending.add(pool.submit(one, i))
                if len(pending) >= self.concurrency:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
                if first_error and stop_on_error:
                    break
            wait(pending)
        if first_error and stop_on_error:
            raise first_error[0]
        return out

    def generate(self, prompt: str, max_tokens: int = 512, temperature: float = 0.8, seed: int = 0,
                 grammar: str | None = None, schema: dict | None = None) -> str:
        """Free text (used by synthetic data), through the same cache and ledger."""
        params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed, "grammar": grammar,
                  "schema": schema}
        key = make_key(self.model_id, "generate", prompt, params)
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.add(cache_hits=1)
            return hit["text"]
        text, use = self._generate(prompt, **params)
        self.cache.put(key, self.model_id, "generate", {"text": text})
        self.usage.add(calls=1, prompt_tokens=use.get("prompt_tokens", 0),
                       completion_tokens=use.get("completion_tokens", 0), seconds=use.get("seconds", 0.0),
                       retries=use.get("retries", 0))
        return text

    def _generate(self, prompt: str, **params) -> tuple[str, dict]:
        raise NotImplementedError(f"{type(self).__name__} cannot generate text")

    def close(self) -> None:
        pass
