"""Crashes: `smallworld train` SIGKILLed at a random moment while it asks a teacher, then run again to the end,
gives the model of an uninterrupted run, and no answer that reached the cache is ever asked again.

The teacher is the fault server in ``ok`` mode (answers derived from a hash of the prompt, 50 ms each), so
runs are fast and deterministic. The property is checked from both sides: the rerun's ledger (calls, cache
hits) and the server's own count of answered requests. The one repeat that cannot be avoided is an answer the
server sent while the client was being killed (in flight, never cached): at most one, with --concurrency 1.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, cli
from faults import FaultServer
from smallworld.demo import EXAMPLES

SEED = EXAMPLES / "cmdlines_seed.jsonl"
DEV = EXAMPLES / "cmdlines_dev.jsonl"
TELE = EXAMPLES / "cmdlines_telemetry.jsonl"


def _args(url: str, cache: Path, out: Path) -> list[str]:
    return ["train", "--task", "cmdlines", "--labelled", str(SEED), "--unlabelled", str(TELE), "--dev", str(DEV),
            "--teacher", url, "--budget", "12", "--calibration", "6", "--teacher-eval", "4", "--rounds", "2",
            "--strategy", "combined", "--concurrency", "1", "--cache", str(cache), "--out", str(out)]


def _usage(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) calls, (\d+) cache hits", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


def _rows(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.OperationalError:  # killed before the table was created
            return 0


def _sha(out: Path) -> str:
    return json.loads((out / "model.json").read_text())["weights_sha256"]


@pytest.fixture(scope="module")
def teacher_and_reference(tmp_path_factory):
    """The fault server, and an uninterrupted run against it: its model's sha256 and how many distinct
    prompts a run asks."""
    with FaultServer(mode="ok", delay=0.05) as srv:
        tmp = tmp_path_factory.mktemp("reference")
        r = cli(*_args(srv.url, tmp / "c.sqlite", tmp / "m"), timeout=600)
        calls, hits = _usage(r.stderr)
        assert hits == 0 and calls == srv.answered == _rows(tmp / "c.sqlite")
        assert len(set(srv.state.prompts)) == calls  # every prompt distinct
        yield srv, _sha(tmp / "m"), calls


@settings(max_examples=5, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(frac=st.floats(0.0, 0.999), extra=st.floats(0.0, 0.08))
def test_sigkill_during_teacher_calls_then_rerun_gives_the_same_model(teacher_and_reference, frac, extra):
    srv, ref_sha, distinct = teacher_and_reference
    k = int(frac * distinct)  # kill once the teacher has sent this many answers (plus a random extra delay)
    with tempfile.TemporaryDirectory(prefix="sw-crash-") as d:
        cache, out = Path(d) / "c.sqlite", Path(d) / "m"
        base = srv.answered
        p = subprocess.Popen([sys.executable, "-m", "smallworld.cli", *_args(srv.url, cache, out)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while srv.answered - base < k and p.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(extra)
        p.send_signal(signal.SIGKILL)
        p.wait()
        sent = srv.answered - base
        kept = _rows(cache)
        assert kept <= sent <= kept + 1  # at most the one answer in flight at the kill is lost
        assert p.returncode == -signal.SIGKILL or sent == distinct, "the kill must land during the run"

        r = cli(*_args(srv.url, cache, out), timeout=600)
        calls, hits = _usage(r.stderr)
        assert hits == kept and calls == distinct - kept  # nothing cached is asked twice, nothing missing
        assert srv.answered - base == sent + calls  # the server agrees with the ledger
        assert _rows(cache) == distinct
        assert _sha(out) == ref_sha
