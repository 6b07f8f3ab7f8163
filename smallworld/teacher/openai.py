"""An OpenAI-compatible teacher (OpenAI, vLLM, Ollama, llama.cpp server) over HTTP with httpx.

Completions endpoint (default): the prompt is sent as is and the first answer token's top log-probabilities
are read. Chat endpoint: the instruction is the system message, the rest the user message. Where a server
returns no log-probabilities, ``samples`` answers are drawn at temperature 1 and counted.
Retries with exponential backoff (honouring Retry-After) on 429, 5xx, timeouts and dropped connections.
"""

from __future__ import annotations

import json
import os
import random
import time

import httpx

from ..errors import TeacherError
from .base import Teacher

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAITeacher(Teacher):
    def __init__(self, base_url: str, model: str = "default", api_key_env: str = "OPENAI_API_KEY",
                 endpoint: str = "completions", timeout: float = 60.0, retries: int = 5, backoff: float = 0.5,
                 concurrency: int = 4, top_logprobs: int = 20, samples: int = 5,
                 price_prompt_per_1k: float = 0.0, price_completion_per_1k: float = 0.0, **kw):
        if endpoint not in ("completions", "chat"):
            raise TeacherError(f"endpoint must be 'completions' or 'chat', not {endpoint!r}")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.endpoint = endpoint
        self.retries = retries
        self.backoff = backoff
        self._sleep = time.sleep  # the wait between retries (a test records it instead of timing it)
        self.concurrency = max(1, int(concurrency))
        self.top_logprobs = top_logprobs
        self.samples = samples
        self.model_id = f"openai:{self.base_url}:{model}:{endpoint}"
        key = os.environ.get(api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout),
                                  limits=httpx.Limits(max_connections=self.concurrency + 1))
        super().__init__(**kw)
        self.usage.price_prompt_per_1k = price_prompt_per_1k
        self.usage.price_completion_per_1k = price_completion_per_1k
        self._logprobs_supported: bool | None = None
        self._json_schema_ok: bool | None = None

    def params(self) -> dict:
        return {"endpoint": self.endpoint, "top_logprobs": self.top_logprobs}

    # -- HTTP with retries ------------------------------------------------------------------------------
    def _post(self, path: str, payload: dict, max_retries: int | None = None) -> tuple[dict, int]:
        max_retries = self.retries if max_retries is None else max_retries
        retries = 0
        delay = self.backoff
        while True:
            err: str
            try:
                r = self._http.post(path, json=payload)
                if r.status_code == 200:
                    try:
                        body = r.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        err = f"malformed JSON in the answer from {self.base_url}{path}"
                    else:
                        if isinstance(body, dict) and body.get("choices"):
                            return body, retries
                        err = f"answer from {self.base_url}{path} has no choices"
                elif r.status_code in RETRY_STATUS:
                    err = f"HTTP {r.status_code} from {self.base_url}{path}"
                    ra = r.headers.get("retry-after")
                    if ra:
                        try:
                            delay = max(delay, min(float(ra), 60.0))
                        except ValueError:
                            pass
                else:
                    raise TeacherError(f"HTTP {r.status_code} from {self.base_url}{path}: {r.text[:300]}")
            except httpx.TimeoutException:
                err = f"timed out waiting for {self.base_url}{path}"
            except httpx.TransportError as e:
                err = f"connection to {self.base_url}{path} failed ({type(e).__name__}: {e})"
            if retries >= max_retries:
                raise TeacherError(f"{err}; gave up after {retries} retries")
            retries += 1
            self._sleep(delay * (0.75 + 0.5 * random.random()))
            delay = min(delay * 2, 30.0)

    @staticmethod
    def _usage(body: dict) -> dict:
        u = body.get("usage") or {}
        return {"prompt_tokens": int(u.get("prompt_tokens") or 0), "completion_tokens": int(u.get("completion_tokens") or 0)}

    # -- classification ---------------------------------------------------------------------------------
    def _payload(self, prompt: str, logprobs: bool, temperature: float = 0.0, max_tokens: int = 1) -> tuple[str, dict]:
        p: dict = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature}
        if self.endpoint == "completions":
            p["prompt"] = prompt
            if logprobs:
                p["logprobs"] = self.top_logprobs
                p["top_logprobs"] = self.top_logprobs  # llama.cpp server reads this name
            return "/completions", p
        system, _, user = prompt.partition("\n\n")
        p["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if logprobs:
            p["logprobs"] = True
            p["top_logprobs"] = self.top_logprobs
        return "/chat/completions", p

    @staticmethod
    def _top(body: dict) -> list[tuple[str, float]] | None:
        ch = body["choices"][0]
        lp = ch.get("logprobs")
        if not lp:
            return None
        if isinstance(lp.get("content"), list) and lp["content"]:  # chat format
            first = lp["content"][0]
            return [(t["token"], float(t["logprob"])) for t in first.get("top_logprobs") or []] or None
        tops = lp.get("top_logprobs")  # completions format: list of {token: logprob}
        if isinstance(tops, list) and tops and isinstance(tops[0], dict):
            return [(k, float(v)) for k, v in tops[0].items()] or None
        return None

    @staticmethod
    def _text(body: dict) -> str:
        ch = body["choices"][0]
        if "message" in ch:
            return (ch["message"] or {}).get("content") or ""
        return ch.get("text") or ""

    def _ask(self, prompt: str) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        use = {"prompt_tokens": 0, "completion_tokens": 0, "retries": 0}
        if self._logprobs_supported is not False:
            path, payload = self._payload(prompt, logprobs=True)
            body, r = self._post(path, payload)
            use["retries"] += r
            for k, v in self._usage(body).items():
                use[k] += v
            top = self._top(body)
            if top is not None:
                self._logprobs_supported = True
                use["seconds"] = time.perf_counter() - t0
                return {"top": top}, use
            self._logprobs_supported = False  # this server gives none: sample from now on
        samples = []
        for _ in range(self.samples):
            path, payload = self._payload(prompt, logprobs=False, temperature=1.0, max_tokens=3)
            body, r = self._post(path, payload)
            use["retries"] += r
            for k, v in self._usage(body).items():
                use[k] += v
            samples.append(self._text(body))
        use["seconds"] = time.perf_counter() - t0
        return {"samples": samples}, use

    # -- generation -------------------------------------------------------------------------------------
    def _generate(self, prompt: str, max_tokens: int = 512, temperature: float = 0.8, seed: int = 0,
                  grammar: str | None = None, schema: dict | None = None) -> tuple[str, dict]:
        """Free text; with a schema, constrained JSON through the chat endpoint's response_format (json_schema,
        falling back to json_object with a schema, which llama.cpp's server wants); with a grammar, llama.cpp's
        GBNF extension on the completions endpoint."""
        t0 = time.perf_counter()
        retries = 0
        if schema is not None:
            payload = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
                       "messages": [{"role": "user", "content": prompt}]}
            body = None
            if self._json_schema_ok is not False:
                payload["response_format"] = {"type": "json_schema",
                                              "json_schema": {"name": "answer", "schema": schema}}
                try:
                    body, retries = self._post("/chat/completions", payload, max_retries=0)
                    self._json_schema_ok = True
                except TeacherError:
                    self._json_schema_ok = False
            if body is None:
                payload["response_format"] = {"type": "json_object", "schema": schema}
                body, retries = self._post("/chat/completions", payload)
        else:
            path, payload = self._payload(prompt, logprobs=False, temperature=temperature, max_tokens=max_tokens)
            payload["seed"] = seed
            if grammar:
                payload["grammar"] = grammar  # llama.cpp extension
            body, retries = self._post(path, payload)
        use = self._usage(body) | {"retries": retries, "seconds": time.perf_counter() - t0}
        return self._text(body), use

    def close(self) -> None:
        self._http.close()
