"""Every door a user reaches is strict: options with a fixed set of values, inputs checked before any work, outputs
never left half-written. Each failure is one line on stderr and exit status 2, never a traceback.

The doors: the CLI's commands (train, label, synth, score, evaluate, explain, review, compress, serve, run), the
Python API (``smallworld.train``/``label``/``load``) and the run config; each checks through the same core
(:class:`smallworld.pipeline.TrainConfig`, :mod:`smallworld.data`, :mod:`smallworld.choices`).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import cli
from smallworld.demo import EXAMPLES
from smallworld.errors import SmallworldError

SEED = EXAMPLES / "cmdlines_seed.jsonl"
DEV = EXAMPLES / "cmdlines_dev.jsonl"
TELE = EXAMPLES / "cmdlines_telemetry.jsonl"


def refused(r, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("doors") / "m"
    cli("train", "--task", "cmdlines", "--labelled", SEED, "--teacher", "none", "--out", out)
    return out


@pytest.mark.parametrize("args,needle", [
    (["--mode", "High_Confidence"], "best_guess, high_confidence"),
    (["--on-error", "skp"], "raise, skip"),
    (["--format", "jsonlines"], "jsonl, csv"),
])
def test_score_options_are_choices(model, args, needle):
    refused(cli("score", model, "-", *args, input="ls\n", check=False), needle)


def test_the_high_confidence_mode_is_the_models_threshold(model):
    h = json.loads((model / "model.json").read_text())["thresholds"]
    lines = "ls -la\npowershell -nop -w hidden -enc SQBFAFgA\n"
    for mode in ("best_guess", "high_confidence"):
        rows = [json.loads(x) for x in cli("score", model, "-", "--mode", mode, input=lines).stdout.splitlines()]
        assert all((r["decision"] == "malicious") == (r["score"] >= h[mode]) for r in rows)


@pytest.mark.parametrize("cmd,args,needle", [
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--strategy", "uncertainity"], "--strategy"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--noisy", "ignore"], "--noisy"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--targets", "soft"], "--targets"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--student", "bert"], "--student"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--endpoint", "chat/completions"], "--endpoint"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--combine-rule", "mean"], "--combine-rule"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--budget", "-5"], "--budget"),
    ("train", ["--task", "cmdlines", "--labelled", SEED, "--teacher", "gpt-4"], "--teacher"),
    ("label", ["--task", "cmdlines", TELE, "--teacher", "none"], "--teacher must be 'embedded'"),
    ("synth", ["--task", "cmdlines", "--n", "3", "--teacher", "none"], "--teacher must be 'embedded'"),
    ("compress", ["--dtype", "float8"], "--dtype"),
])
def test_option_mistakes_are_one_line(tmp_path, model, cmd, args, needle):
    out = tmp_path / "out"
    pre = [model] if cmd == "compress" else []
    r = cli(cmd, *pre, *args, "--out", out, check=False)
    refused(r, needle)
    assert not out.exists()  # nothing was written, no teacher was started


def test_inputs_are_checked_before_any_output_or_teacher_call(tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--task", "cmdlines", "--labelled", SEED, "--unlabelled", tmp_path / "missing.jsonl",
            "--teacher", "http://127.0.0.1:9/v1", "--out", out, check=False)  # port 9: a teacher call would fail otherwise
    refused(r, "missing.jsonl: no such file")
    assert not out.exists()
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    refused(cli("train", "--task", "cmdlines", "--labelled", empty, "--teacher", "none", "--out", out, check=False),
            "no readable files")
    refused(cli("train", "--task", "cmdlines", "--labelled", "-", "--unlabelled", "-", "--teacher", "none",
                "--out", out, input="", check=False), "standard input")
    assert not out.exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    refused(cli("train", "--task", "cmdlines", "--labelled", SEED, "--teacher", "none", "--out", blocker / "m",
                check=False), "not a writable directory")


def test_directories_and_stdin_are_inputs_to_train(tmp_path):
    """--labelled DIR and --unlabelled - train and leave a manifest (they once crashed at the manifest step)."""
    d = tmp_path / "seed_dir"
    d.mkdir()
    (d / "a.jsonl").write_text(SEED.read_text())
    out = tmp_path / "m"
    cli("train", "--task", "cmdlines", "--labelled", d, "--unlabelled", "-", "--teacher", "none", "--out", out,
        input=TELE.read_text())
    m = json.loads((out / "manifest.json").read_text())
    assert m["inputs"][str(d)]["files"] == 1 and len(m["inputs"][str(d)]["sha256"]) == 64
    assert m["inputs"]["-"] == {"stdin": True} and m["counts"]["unlabelled"] == len(TELE.read_text().splitlines())


def test_score_out_is_all_or_nothing(model, tmp_path):
    out = tmp_path / "scores.jsonl"
    out.write_text("yesterday's scores\n")
    refused(cli("score", model, tmp_path / "missing.txt", "--out", out, check=False), "no such file")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ls"}\n' * 20_000 + "{not json\n")
    refused(cli("score", model, bad, "--out", out, check=False), "line 20001")
    assert out.read_text() == "yesterday's scores\n" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    cli("score", model, bad, "--out", out, "--on-error", "skip")
    assert len(out.read_text().splitlines()) == 20_000
    refused(cli("score", model, "-", "--out", tmp_path, input="ls\n", check=False), "is a directory")
    cli("score", model, "-", "--out", os.devnull, input="ls\n")  # a device is written, never replaced by a file
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_python_doors_check_the_same_way(tmp_path):
    import smallworld

    with pytest.raises(SmallworldError, match="--strategy must be one of"):
        smallworld.train(task="cmdlines", labelled=str(SEED), out=str(tmp_path / "m"), teacher=None, strategy="smart")
    with pytest.raises(SmallworldError, match="--on-error must be one of"):
        smallworld.train(task="cmdlines", labelled=str(SEED), out=str(tmp_path / "m"), teacher=None, on_error="ignore")
    m = smallworld.train(task="cmdlines", labelled=str(SEED), out=str(tmp_path / "m"), teacher=None).model
    with pytest.raises(SmallworldError, match="mode must be one of"):
        m.predict(["ls"], mode="paranoid")
    assert not (tmp_path / "bad").exists()
