"""The fast scoring paths equal the reference: the fused two-class kernel, list packing, and the plain-lines
path of `smallworld score` (byte for byte the general path's output)."""

import gzip
import io
import json
import math

import numpy as np
import pytest

from conftest import cli
from smallworld import data as D
from smallworld.errors import DataError
from smallworld.serve import bulk as S
from smallworld.serve.score import score_stream
from smallworld.student.model import Model
from smallworld.student import features, modelfile
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task

try:  # the compiled bulk kernel (built with the package; where it is missing, numba's runs and is tested alone)
    from smallworld.serve import _cbulk as C
except ImportError:  # pragma: no cover
    C = None
KERNELS = ["numba"] + (["c"] if C is not None else [])


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    """Each bulk kernel in turn (SMALLWORLD_BULK), for the tests of the plain-lines path; in this process every
    block goes through it, however small (the CLI leaves blocks under 64 KiB to the general path)."""
    from smallworld.serve import score

    monkeypatch.setenv("SMALLWORLD_BULK", request.param)
    monkeypatch.setattr(score, "SMALL_BLOCK", 0)
    return request.param


ODD = ["", "a", "ab", "ABC def", "x" * 300, "é", "日本語 テキスト", "🙂 emoji", "a\ud800b", "tab\tsep", "MiXeD-CaSe_99",
       " lead and trail ", "\x01\x7f\x80"]


def _random_model(cfg, labels=("pos", "neg"), seed=0):
    rng = np.random.default_rng(seed)
    m = LinearStudent(labels, cfg)
    m.W = rng.normal(size=(1 << m.feature_config["dim_bits"], 2)).astype(np.float32)
    m.b = rng.normal(size=2).astype(np.float32)
    return m


@pytest.fixture(scope="module")
def url_texts(data_dir):
    return [r["text"] for r in D.read_rows(data_dir / "urls" / "dev.jsonl.gz")][:4000]


@pytest.mark.parametrize("cfg", [
    {},
    {"ngram_min": 2, "ngram_max": 3, "tokens": False},
    {"ngram_min": 1, "ngram_max": 1, "lowercase": False},
    {"ngram_min": 3, "ngram_max": 7, "max_bytes": 16, "dim_bits": 12},
    {"ngram_min": 16, "ngram_max": 16, "dim_bits": 10},  # short items have no n-grams at all
])
@pytest.mark.parametrize("pos", [0, 1])
def test_binary_kernel_equals_softmax_of_logits(url_texts, cfg, pos):
    texts = url_texts[:1500] + ODD
    m = _random_model(cfg)  # not centred: the float64 column
    w, b0 = features.binary_weights(m.W, m.b, pos)
    assert w.dtype == np.float64
    got = features.binary_probs(texts, m.feature_config, w, b0)
    want = m.predict_proba(texts)[:, pos]
    assert np.abs(got - want).max() < 1e-12
    # a centred model (rows sum to zero, as training leaves them): the exact float32 column
    m.W[:, 1] = -m.W[:, 0]
    w, b0 = features.binary_weights(m.W, m.b, pos)
    assert w.dtype == np.float32
    assert np.abs(features.binary_probs(texts, m.feature_config, w, b0) - m.predict_proba(texts)[:, pos]).max() < 1e-12


@pytest.mark.skipif(C is None, reason="the C kernel was not built")
@pytest.mark.parametrize("cfg", [
    {},  # 1-5 and tokens: the task defaults, whose longest length has its own loop in the C kernel
    {"ngram_min": 3, "ngram_max": 5},
    {"ngram_min": 2, "ngram_max": 5, "tokens": False, "lowercase": False},
    {"ngram_min": 5, "ngram_max": 5, "max_bytes": 7},
    {"ngram_min": 2, "ngram_max": 4},
])
@pytest.mark.parametrize("centred", [False, True])  # the float64 column, then the float32 one
def test_c_kernel_scores_equal_the_reference(url_texts, cfg, centred):
    texts = [t for t in url_texts[:1500] + ODD if t.strip() and "\ud800" not in t and "\r" not in t and "\n" not in t]
    m = _random_model(cfg, seed=3)
    if centred:
        m.W[:, 1] = -m.W[:, 0]
    w, b0 = features.binary_weights(m.W, m.b, 0)
    assert (w.dtype == np.float32) == centred
    nmin, nmax, tokens, lower, max_bytes, mask = features.kernel_args(m.feature_config)
    buf = np.frombuffer("\n".join(texts).encode(), dtype=np.uint8)
    yes, no = np.frombuffer(b"}Y\n", np.uint8), np.frombuffer(b"}N\n", np.uint8)
    out = np.empty(len(texts) * 60, dtype=np.uint8)
    size, rows = C.jsonl_rows(buf, np.zeros(0, np.int64), 1, nmin, nmax, int(tokens), int(lower), max_bytes, int(mask),
                              w, w.dtype == np.float64, b0, 0.5, yes, no, 1 << 20, out)
    assert rows == len(texts)
    got = [json.loads(x[:-1])["score"] for x in out[:size].tobytes().decode().splitlines()]
    want = features.binary_probs(texts, m.feature_config, w, b0)
    assert got == [round(float(p), 6) for p in want]


@pytest.mark.parametrize("texts", [ODD, [], [""], ["é"], ["a", "b\x00c", "d"], [b"raw", b"\xff"], ("t", "u"),
                                   ["ascii", "only"]])
def test_pack_and_spans_give_each_items_utf8_bytes(texts):
    enc = [t.encode("utf-8", "surrogatepass") if isinstance(t, str) else t for t in texts]
    buf, offsets = features.pack(texts)
    assert [buf[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(texts))] == enc
    buf, starts, ends = features.spans(iter(texts))
    assert [buf[s:e].tobytes() for s, e in zip(starts, ends)] == enc


def test_scorer_scores_use_the_fast_kernel_and_equal_the_reference(tmp_path, url_texts):
    task = load_task("urls")
    m = _random_model(task.features | {"dim_bits": 14}, ("benign", "phishing"))
    d = modelfile.save(m, tmp_path / "m", {"task": task.to_dict()})
    sc = Model(d)
    assert sc.binary is not None
    texts = url_texts + ODD
    assert np.abs(sc.scores(texts) - sc.predict_proba(texts)[:, sc.pos]).max() < 1e-12
    assert sc.scores([]).shape == (0,)


def _exact_tie_values():
    # doubles exactly halfway between two multiples of 1e-6: (2j + 1) / (2 * 10**6) is a binary fraction only
    # when 5**6 divides 2j + 1, that is for m / 128 with m odd
    return [m / 128 for m in range(1, 128, 2)]


def test_scores_are_written_as_json_writes_round_p_6():
    rng = np.random.default_rng(0)
    ps = list(rng.random(20000)) + list(rng.random(5000) ** 8) + [0.0, 1.0, 5e-7, 4.99999e-7, 1e-6, 1e-5, 1e-4,
                                                                  9.9995e-5, 0.9999995, 0.1, 0.25, 1 - 1e-12]
    ps += [k / 1e6 for k in range(0, 200)] + [k / 1e6 for k in range(999800, 1000001)]
    ties = _exact_tie_values()
    ps += ties + [math.nextafter(t, 0) for t in ties] + [math.nextafter(t, 1) for t in ties]
    ps += [(k + 0.5) / 1e6 for k in rng.integers(0, 10**6, 3000)]  # near ties (not exact in binary)
    out = np.empty(32, dtype=np.uint8)
    for p in map(float, ps):  # Python's round (numpy's rounds p * 1e6 instead)
        assert S._micros(p) == round(round(p, 6) * 1e6), p
        n = S._put_score(out, 0, p)
        want = json.dumps(round(p, 6))
        assert out[:n].tobytes().decode() == want, p
        if C is not None:
            assert C.score_repr(p).decode() == want, p


def test_blank_lines_are_what_str_strip_empties():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    enc = np.frombuffer("".join(chars).encode(), dtype=np.uint8)
    pos = 0
    for ch in chars:
        n = len(ch.encode())
        assert S._blank(enc, pos, pos + n) == (not ch.strip()), hex(ord(ch))
        assert C is None or C.check_line(ch.encode()) == (True, not ch.strip()), hex(ord(ch))
        pos += n
    b = np.frombuffer(" \t\u3000 \u00a0".encode(), dtype=np.uint8)
    assert S._blank(b, 0, len(b)) and not S._blank(np.frombuffer(b" x ", dtype=np.uint8), 0, 3)


def test_utf8_check_matches_pythons_decoder():
    rng = np.random.default_rng(0)
    pieces = [b"a", b"\xc3\xa9", b"\xe6\x97\xa5", b"\xf0\x9f\x99\x82", b"\xed\x9f\xbf", b"\xee\x80\x80",
              b"\xf4\x8f\xbf\xbf"]
    bad = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80", b"\xff", b"\x80",
           b"\xc3", b"\xe6\x97", b"\xf8\x88\x80\x80\x80"]
    for _ in range(3000):
        parts = [pieces[i] for i in rng.integers(0, len(pieces), rng.integers(0, 6))]
        if rng.random() < 0.5:
            parts.insert(int(rng.integers(0, len(parts) + 1)), bad[rng.integers(0, len(bad))])
        if rng.random() < 0.2:
            parts = [bytes(rng.integers(0, 256, rng.integers(1, 6), dtype=np.uint8))]
        b = b"".join(parts)
        try:
            b.decode("utf-8")
            ok = True
        except UnicodeDecodeError:
            ok = False
        assert S._utf8(np.frombuffer(b, dtype=np.uint8), 0, len(b)) == ok, b
        assert C is None or C.check_line(b)[0] == ok, b


# -- `smallworld score` on plain lines ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def url_model(data_dir, tmp_path_factory):
    task = load_task("urls")
    rows = D.read_rows(data_dir / "urls" / "train.jsonl.gz")[:3000]
    Y = np.array([[r["label"] == lab for lab in task.labels] for r in rows], dtype=float)
    m = LinearStudent(task.labels, task.features | {"dim_bits": 16}).fit([r["text"] for r in rows], Y)
    return modelfile.save(m, tmp_path_factory.mktemp("fast") / "m", {"task": task.to_dict(),
                                                                      "thresholds": {"best_guess": 0.3}})


def _both(scorer, path, **kw):
    """(fast output, general output, fast stats, general stats) for one plain-lines file."""
    out = []
    for fast in (True, False):
        stats = D.ReadStats()
        rows = D.iter_rows(path, stats=stats, **kw)
        assert isinstance(rows, D.LineRows)
        f = io.StringIO()
        score_stream(scorer, rows if fast else iter(list(rows)), f)
        out.append((f.getvalue(), stats))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def test_the_package_was_built_with_its_c_kernel():
    """CI and `make` build it (setup.py); a silent fallback to numba would hide a broken build."""
    assert C is not None


def test_plain_lines_output_is_the_general_paths_byte_for_byte(url_model, url_texts, tmp_path, kernel):
    sc = Model(url_model)
    lines = url_texts + [t for t in ODD if t != "a\ud800b"] + ["", "   ", "\u3000\u00a0", "crlf\r", "many-cr\r\r\r", "\r",
                                                               "http://x/\u2028y"]
    body = "\n".join(lines * 20)  # ~5 MB: more than one block; no final newline
    p = tmp_path / "items.txt"
    p.write_bytes(body.encode())
    fast, general, fs, gs = _both(sc, p)
    assert fast == general and fs.rows == gs.rows
    rows = [json.loads(x) for x in fast.splitlines()]
    assert len(rows) == fs.rows == sum(1 for x in body.split("\n") if x.rstrip("\r").strip())
    assert rows[0]["id"] == "1" and set(rows[0]) == {"id", "score", "decision"}
    assert {r["decision"] for r in rows} == {"phishing", "benign"}
    # gzip, and the CLI itself (fast path) against the general path
    gz = tmp_path / "items.txt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert _both(sc, gz)[0] == general
    r = cli("score", url_model, gz)
    assert r.stdout == general
    r = cli("score", url_model, "-", input=body)
    assert r.stdout == general


@pytest.mark.parametrize("bad,reason", [(b"nul\x00byte", "NUL bytes"), (b"bad \xff utf8", "invalid UTF-8"),
                                        (b"surrogate \xed\xa0\x80", "invalid UTF-8")])
def test_bad_lines_are_refused_or_skipped_as_the_reader_does(url_model, url_texts, tmp_path, bad, reason, kernel):
    sc = Model(url_model)
    p = tmp_path / "bad.txt"
    p.write_bytes(b"\n".join([t.encode() for t in url_texts[:500]] + [bad] + [t.encode() for t in url_texts[500:900]]))
    fast, general, fs, gs = _both(sc, p, on_error="skip")
    assert fast == general and fs.skipped == gs.skipped == 1 and fs.reasons == {reason: 1} and fs.rows == gs.rows
    with pytest.raises(DataError, match="line 501"):
        score_stream(sc, D.iter_rows(p), io.StringIO())


def test_overlong_lines_are_refused_or_skipped_as_the_reader_does(url_model, tmp_path, monkeypatch, kernel):
    monkeypatch.setattr(D, "MAX_LINE_BYTES", 1000)
    sc = Model(url_model)
    p = tmp_path / "long.txt"
    for body in (b"short\n" + b"y" * 999 + b"\nafter\n",  # 999 bytes + newline = 1000: fine
                 b"short\n" + b"y" * 1000 + b"\nafter\n" + b"z" * 5000 + b"\nend",  # too long, both
                 b"y" * 3000):
        p.write_bytes(body)
        fast, general, fs, gs = _both(sc, p, on_error="skip")
        assert fast == general and (fs.skipped, fs.reasons, fs.rows) == (gs.skipped, gs.reasons, gs.rows)


def test_blocks_are_whole_lines_with_their_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "MAX_LINE_BYTES", 50)
    p = tmp_path / "x.txt"
    lines = [b"l%d" % i + b"." * (i % 37) for i in range(400)] + [b"w" * 120, b"", b"tail"]
    p.write_bytes(b"\n".join(lines))
    for size in (7, 64, 1000, 1 << 16):
        stats = D.ReadStats()
        src = D.iter_rows(p, stats=stats, on_error="skip")
        got = [row for first, block in src.blocks(size) for row in src.block_rows(first, block)]
        want = D.read_rows(p, on_error="skip")
        assert got == want and stats.skipped == 1, size


def test_other_inputs_and_models_take_the_general_path(tmp_path, url_model):
    # JSONL rows, --probs, three classes and a normalising task keep their output
    sc = Model(url_model)
    p = tmp_path / "rows.jsonl"
    p.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(ODD)))
    assert not isinstance(D.iter_rows(p), D.LineRows)
    f = io.StringIO()
    score_stream(sc, D.iter_rows(p), f, all_probs=True)
    first = json.loads(f.getvalue().splitlines()[0])
    assert first["id"] == "r0" and set(first["probs"]) == {"phishing", "benign"}
    m = LinearStudent(("a", "b", "c"), {"dim_bits": 10}).fit(["x", "y", "z"], np.eye(3))
    sc3 = Model(modelfile.save(m, tmp_path / "m3"))
    assert sc3.binary is None
    q = tmp_path / "l.txt"
    q.write_text("x\ny\n\nz\n")
    out = io.StringIO()
    score_stream(sc3, D.iter_rows(q), out)
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == ["1", "2", "4"]
    task = load_task("emails")
    m = LinearStudent(("spam", "ham"), {"dim_bits": 10}).fit(["Buy NOW", "hello"], np.eye(2))
    sc_e = Model(modelfile.save(m, tmp_path / "me", {"task": task.to_dict() | {"labels": ["spam", "ham"],
                                                                                 "positive": "spam"}}))
    f1, f2, _, _ = _both(sc_e, q)
    assert f1 == f2
