"""The usage ledger: calls, tokens, seconds, cache hits, failures and cost of every teacher used by a command."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class Usage:
    model: str = ""
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    retries: int = 0
    failures: int = 0
    unusable: int = 0
    injection_flags: int = 0
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.price_prompt_per_1k + self.completion_tokens * self.price_completion_per_1k) / 1000

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        d["cost"] = round(self.cost, 6)
        d["seconds"] = round(self.seconds, 3)
        d["seconds_per_call"] = round(self.seconds / self.calls, 4) if self.calls else None
        return d

    def render(self) -> str:
        d = self.to_dict()
        cost = f", cost {d['cost']:.4f}" if (self.price_prompt_per_1k or self.price_completion_per_1k) else ""
        return (f"teacher usage [{self.model}]: {d['calls']} calls, {d['cache_hits']} cache hits, "
                f"{d['prompt_tokens']} prompt + {d['completion_tokens']} completion tokens, {d['seconds']:.1f} s"
                f"{cost}; {d['retries']} retries, {d['failures']} failed, {d['unusable']} unusable answers"
                + (f", {d['injection_flags']} items flagged as prompt injection" if self.injection_flags else ""))
