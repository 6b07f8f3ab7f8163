"""One reference implementation of the feature hash (``features.reference_features``, numpy, written to be
read); every other one is held to it bit for bit: the numba kernels (``_emit`` behind training and
``transform``, ``_sum`` behind two-class scoring and the bulk path), the compiled C bulk kernel, and ``explain``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smallworld import data as D
from smallworld.student import explain, features, kernels

CFGS = [features.config(c) for c in (
    {}, {"ngram_min": 3, "ngram_max": 5, "dim_bits": 12}, {"tokens": False, "lowercase": False, "ngram_max": 1},
    {"ngram_min": 2, "ngram_max": 16, "max_bytes": 7, "dim_bits": 8}, {"ngram_min": 16, "ngram_max": 16})]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
ITEMS = st.one_of(st.text(max_size=80), st.binary(max_size=80), st.sampled_from(["", "A" * 5000, "é 中文 🙂", "x\ud800y"]))


def _emit(item: bytes, cfg: dict) -> np.ndarray:
    arr = np.frombuffer(item, dtype=np.uint8)
    out = np.empty(kernels._max_feats(min(len(item), cfg["max_bytes"]), cfg["ngram_min"], cfg["ngram_max"],
                                      cfg["tokens"]), dtype=np.uint32)
    k = kernels._emit(arr, 0, len(item), *features.kernel_args(cfg), out)
    return out[:k]


@pytest.fixture(scope="module")
def real_items(data_dir):
    return [r["text"] for task in ("cmdlines", "urls") for r in D.read_rows(data_dir / task / "dev.jsonl.gz")[:600]]


@pytest.mark.parametrize("cfg", CFGS, ids=range(len(CFGS)))
def test_emit_and_transform_equal_the_reference(cfg, real_items):
    for t in real_items:
        b = features._item_bytes(t)
        assert np.array_equal(_emit(b, cfg), features.reference_buckets(b, cfg)), t
    X = features.transform(real_items[:200], cfg).toarray()
    for i, t in enumerate(real_items[:200]):
        ref = features.reference_buckets(features._item_bytes(t), cfg)
        want = np.bincount(ref, minlength=X.shape[1]) / np.sqrt(len(ref)) if len(ref) else np.zeros(X.shape[1])
        assert np.allclose(X[i], want, rtol=1e-6, atol=0), t


@SETTINGS
@given(item=ITEMS, which=st.integers(0, len(CFGS) - 1))
def test_every_kernel_equals_the_reference_on_any_bytes(item, which):
    cfg = CFGS[which]
    b = features._item_bytes(item)
    assert np.array_equal(_emit(b, cfg), features.reference_buckets(b, cfg))


@pytest.mark.parametrize("cfg", CFGS, ids=range(len(CFGS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_class_scores_equal_the_reference_to_the_last_bit(cfg, dtype, real_items):
    w = np.random.default_rng(0).standard_normal(1 << cfg["dim_bits"]).astype(dtype)
    texts = real_items + ["", "a", "\x00\x01", "A" * 5000, "é 中文 🙂"]
    ref = np.array([features.reference_prob(features._item_bytes(t), cfg, w, 0.3) for t in texts])
    buf, starts, ends = features.spans(texts)
    out = np.empty(len(texts))
    kernels._binary(buf, starts, ends, *features.fast_args(cfg), w, 0.3, out)
    assert np.array_equal(out, ref)
    # and through the public function: small batches take the reference, large ones the kernel
    assert np.array_equal(features.binary_probs(texts[:10], cfg, w, 0.3), ref[:10])
    assert np.array_equal(features.binary_probs(texts, cfg, w, 0.3), ref)


def test_explain_attributes_the_reference_buckets(real_items):
    cfg = CFGS[0]
    for t in real_items[:100] + ["MiXeD Case_99 é"]:
        names = explain._features(t, cfg)
        assert [b for _, b in names] == features.reference_buckets(features._item_bytes(t), cfg).tolist()
        toks = [n for n, _ in names if n.startswith("token:")]
        assert len(toks) == len(features.reference_features(features._item_bytes(t), cfg)[2])
