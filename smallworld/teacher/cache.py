"""A durable response cache: SQLite, one row per teacher answer, committed as soon as the answer arrives.

The key is the sha256 of (model, kind, prompt, parameters), so an answer is reused only for exactly the same
question. WAL journal with synchronous=FULL: a run killed at any moment loses no answer already written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from ..errors import SmallworldError


def default_dir() -> Path:
    base = os.environ.get("SMALLWORLD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "smallworld")
    return Path(base)


def make_key(model: str, kind: str, prompt: str, params: dict) -> str:
    blob = json.dumps([model, kind, prompt, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_dir() / "teacher-cache.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, kind TEXT,"
                             " value TEXT NOT NULL, created REAL)")
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise SmallworldError(f"{self.path}: cannot open the teacher cache ({e})") from None

    def get(self, key: str):
        with self._lock:
            row = self._db.execute("SELECT value FROM answers WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, model: str, kind: str, value) -> None:
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?)", (key, model, kind, blob, time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
