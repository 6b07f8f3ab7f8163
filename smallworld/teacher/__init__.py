"""Teachers: an OpenAI-compatible HTTP client and the embedded offline model, sharing a durable cache and ledger."""

from __future__ import annotations

from .base import Teacher
from .cache import ResponseCache
from .ledger import Usage


def make_teacher(spec: str, cache_path: str | None = None, model: str | None = None, endpoint: str = "completions",
                 concurrency: int = 4, timeout: float = 60.0, retries: int = 5, api_key_env: str = "OPENAI_API_KEY",
                 price_prompt_per_1k: float = 0.0, price_completion_per_1k: float = 0.0,
                 threads: int | None = None) -> Teacher:
    """``embedded`` for the offline model, or the base URL of an OpenAI-compatible server."""
    check_spec(spec)
    cache = ResponseCache(cache_path)
    if spec == "embedded":
        from .embedded import EmbeddedTeacher

        return EmbeddedTeacher(cache=cache, n_threads=threads)
    if spec.startswith(("http://", "https://")):
        from .openai import OpenAITeacher

        return OpenAITeacher(spec, model=model or "default", endpoint=endpoint, concurrency=concurrency,
                             timeout=timeout, retries=retries, api_key_env=api_key_env, cache=cache,
                             price_prompt_per_1k=price_prompt_per_1k,
                             price_completion_per_1k=price_completion_per_1k)
    raise AssertionError(spec)


def check_spec(spec: str) -> None:
    """A teacher spec: ``embedded`` or an http(s) base URL (checked before any work is done)."""
    if not (spec == "embedded" or (isinstance(spec, str) and spec.startswith(("http://", "https://")))):
        from ..errors import SmallworldError

        raise SmallworldError(f"--teacher must be 'embedded' or an http(s) base URL, not {spec!r}")


__all__ = ["Teacher", "ResponseCache", "Usage", "check_spec", "make_teacher"]
