"""Compression: folding the hash table is an exact re-hash; compressed models stay small and accurate."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import cli
from smallworld import data as D
from smallworld.errors import ModelFileError
from smallworld.evaluate import binary_metrics
from smallworld.student.model import Model
from smallworld.student import features, modelfile
from smallworld.student.compress import compress, fold, model_bytes
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task


def _rows(data_dir, task, split, n, seed=0):
    rows = D.read_rows(data_dir / task / f"{split}.jsonl.gz")
    idx = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in idx]


def _fold_matrix(X: sp.csr_matrix, dim_bits: int) -> sp.csr_matrix:
    """Sum the columns that share their low dim_bits bits (X times the 0/1 folding matrix)."""
    F = sp.csr_matrix((np.ones(X.shape[1]), np.arange(X.shape[1]) & ((1 << dim_bits) - 1), np.arange(X.shape[1] + 1)),
                      shape=(X.shape[1], 1 << dim_bits))
    return (X.astype(np.float64) @ F).tocsr()


@pytest.fixture(scope="module")
def urls(data_dir):
    task = load_task("urls")
    tr, dv = _rows(data_dir, "urls", "train", 8000), _rows(data_dir, "urls", "dev", 6000, seed=1)
    Y = np.array([[r["label"] == lab for lab in task.labels] for r in tr], dtype=float)
    m = LinearStudent(task.labels, task.features).fit([r["text"] for r in tr], Y)
    assert m.feature_config["dim_bits"] == 18
    return task, m, [r["text"] for r in dv], np.array([r["label"] == task.positive for r in dv])


@pytest.mark.parametrize("bits", [16, 14, 10])
def test_folding_equals_rehashing_with_the_smaller_mask(urls, bits):
    task, m, texts, _ = urls
    cfg18 = m.feature_config
    cfg = dict(cfg18, dim_bits=bits)
    X18 = features.transform(texts, cfg18)
    X = features.transform(texts, cfg)
    # features: re-hashing with 2**bits buckets == folding the 2**18-bucket vectors
    assert abs(_fold_matrix(X18, bits) - X.astype(np.float64)).max() < 1e-6
    # model: the folded model scores the re-hashed features with the summed buckets, without retraining
    f = fold(m, bits)
    assert f.feature_config == cfg and f.W.shape == (1 << bits, 2)
    np.testing.assert_allclose(f.W, m.W.astype(np.float64).reshape(-1, 1 << bits, 2).sum(0), rtol=1e-6, atol=1e-7)
    want = _fold_matrix(X18, bits) @ f.W.astype(np.float64) + f.b
    np.testing.assert_allclose(f.decision_function(texts), want, rtol=1e-6, atol=1e-5)  # X18 holds float32 data


def test_folding_to_the_same_size_changes_nothing_and_cannot_grow(urls):
    _, m, texts, _ = urls
    same = fold(m, 18)
    assert np.array_equal(same.W, m.W) and np.array_equal(same.b, m.b)
    with pytest.raises(ModelFileError, match="cannot fold"):
        fold(m, 20)
    with pytest.raises(ModelFileError, match="cannot fold"):
        fold(m, 7)


def _auc(y, s):
    return binary_metrics(y, s)["roc_auc"]


@pytest.mark.parametrize("dtype,bits,max_bytes,max_loss", [
    ("float16", 18, 2_000_000, 0.002),
    ("int8", 18, 600_000, 0.002),
    ("float16", 16, 300_000, 0.002),
    ("int8", 16, 150_000, 0.002),
    ("int8", 14, 40_000, 0.004),
])
def test_compressed_models_are_small_and_keep_their_auc(urls, tmp_path, dtype, bits, max_bytes, max_loss):
    task, m, texts, y = urls
    src = modelfile.save(m, tmp_path / "src", {"task": task.to_dict(), "thresholds": {"best_guess": 0.4}})
    assert model_bytes(src) > 2_000_000  # float32, 2**18 x 2
    d = compress(src, tmp_path / "small", dtype=dtype, dim_bits=bits)
    assert model_bytes(d) <= max_bytes
    base = _auc(y, Model(src).scores(texts))
    sc = Model(d)
    assert base - _auc(y, sc.scores(texts)) <= max_loss
    # metadata survives; provenance is recorded
    h = sc.header
    assert h["task"]["name"] == "urls" and h["thresholds"] == {"best_guess": 0.4}
    assert h["dtype"] == dtype and h["features"]["dim_bits"] == bits
    assert h["compressed_from"] == {"weights_sha256": modelfile.read_header(src)["weights_sha256"],
                                    "dtype": "float32", "dim_bits": 18}


def test_compress_command(urls, tmp_path):
    task, m, texts, _ = urls
    src = modelfile.save(fold(m, 12), tmp_path / "src", {"task": task.to_dict()})
    r = cli("compress", src, "--out", tmp_path / "out", "--dtype", "int8", "--dim-bits", "10")
    assert "bytes ->" in r.stdout and "int8, dim_bits 10" in r.stdout
    h = json.loads((tmp_path / "out" / "model.json").read_text())
    assert h["dtype"] == "int8" and h["dim"] == 1024 and h["task"]["positive"] == "phishing"
    # default dtype: the source's
    cli("compress", tmp_path / "out", "--out", tmp_path / "out2", "--dim-bits", "9")
    assert json.loads((tmp_path / "out2" / "model.json").read_text())["dtype"] == "int8"
    for args, msg in ((["--dim-bits", "14"], "cannot fold"), (["--dtype", "float64"], "'--dtype': must be one of")):
        r = cli("compress", src, "--out", tmp_path / "bad", *args, check=False)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    r = cli("compress", src, "--out", src, check=False)
    assert r.returncode == 2 and "new directory" in r.stderr
