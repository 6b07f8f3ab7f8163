"""Reading rows: JSON Lines (optionally gzipped), CSV, Parquet and plain lines, from files, directories or stdin.

Every row is a dict with at least ``id`` and ``text``; ``label``, ``source``, ``group``, ``meta`` and
``weight`` are kept when present. Malformed input raises :class:`DataError` naming the file and line, or,
with ``on_error="skip"``, is skipped and counted in :class:`ReadStats`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import re
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from . import logs
from .choices import FORMATS, ON_ERROR
from .errors import DataError, SmallworldError

MAX_LINE_BYTES = 16 * 1024 * 1024  # a single row larger than this is an error (or a counted skip)
TEXT_EXT = (".xml", ".evtx", ".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz", ".csv", ".csv.gz",
            ".tsv", ".parquet", ".txt", ".txt.gz", ".log", ".eml", ".mbox", ".html", ".htm")
DOC_KINDS = ("eml", "mbox", "html")  # whole documents: one row per file (per message for mbox)


@dataclass
class ReadStats:
    rows: int = 0
    skipped: int = 0
    reasons: dict = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _kind(path: str) -> str:
    p = path.lower()
    if p.endswith(".gz"):
        p = p[:-3]
    for ext, kind in ((".xml", "winxml"), (".evtx", "evtx"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"),
                      (".tsv", "tsv"), (".parquet", "parquet"), (".eml", "eml"), (".mbox", "mbox"), (".html", "html"),
                      (".htm", "html")):
        if p.endswith(ext):
            return kind
    return "lines"


def _open_binary(path: str):
    if path == "-":
        return sys.stdin.buffer
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # closing it closes the file too
    return open(path, "rb")


class _RowError(DataError):
    """A malformed row (skippable with on_error="skip"), with the reason it is counted under."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _norm_row(obj: dict, where: str, text_field: str, n: int) -> dict:
    text = obj.get(text_field)
    if text is None:
        raise _RowError(f"{where}: no {text_field!r} field (fields: {sorted(map(str, obj))[:10]})", "missing text")
    if not isinstance(text, str):
        text = str(text)
    row = {"id": str(obj.get("id", n)), "text": text}
    for k in ("label", "source", "group", "meta", "weight", "probs", "event"):
        v = obj.get(k)
        if v is not None and v == v:  # drop None and NaN
            row[k] = v
    if "label" in row:
        row["label"] = str(row["label"])
    if "weight" in row:
        try:
            w = float(row["weight"])
        except (TypeError, ValueError, OverflowError):
            w = math.nan
        if not (0.0 <= w < math.inf):
            raise _RowError(f"{where}: weight {str(row['weight'])[:40]!r} is not a finite number >= 0", "bad weight")
        row["weight"] = w
    return row


def _iter_lines(path: str, stats: ReadStats, on_error: str) -> Iterator[tuple[int, str]]:
    """Decoded lines with their 1-based numbers; bad UTF-8, NULs and huge lines are errors or counted skips."""
    f = _open_binary(path)
    try:
        n = 0
        while True:
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except (EOFError, OSError, zlib.error) as e:
                raise _unreadable(path, n + 1, e) from None
            if not raw:
                return
            n += 1
            if len(raw) > MAX_LINE_BYTES:
                # consume the rest of the oversized line
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(MAX_LINE_BYTES)
                _fail(stats, on_error, f"{path}: line {n}: longer than {MAX_LINE_BYTES} bytes", "too long")
                continue
            line = _decode_line(raw, path, n, stats, on_error)
            if line is not None:
                yield n, line
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _unreadable(path: str, n: int, e: Exception) -> DataError:
    return DataError(f"{path}: line {n}: cannot read compressed data ({e}); is the file truncated?")


def _decode_line(raw: bytes, path: str, n: int, stats: ReadStats, on_error: str) -> str | None:
    """A raw line's text without its line ending; None (or an error) for NUL bytes and bad UTF-8."""
    if b"\x00" in raw:
        _fail(stats, on_error, f"{path}: line {n}: contains NUL bytes", "NUL bytes")
        return None
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(stats, on_error, f"{path}: line {n}: invalid UTF-8 at byte {e.start}", "invalid UTF-8")
        return None
    return line.rstrip("\r\n")


def _line_row(n: int, line: str, stats: ReadStats) -> dict | None:
    """The row of a plain line: id = line number; blank lines are no rows."""
    if not line.strip():
        return None
    stats.rows += 1
    return {"id": str(n), "text": line}


def _fail(stats: ReadStats, on_error: str, message: str, reason: str) -> None:
    if on_error == "skip":
        stats.skip(reason)
    else:
        raise DataError(message + " (use --on-error skip to skip such rows)")


def iter_rows(path: str | Path, text_field: str = "text", on_error: str = "raise",
              stats: ReadStats | None = None, fmt: str | None = None) -> Iterator[dict]:
    """Stream rows from one file (or '-' for stdin) in constant memory.

    Plain-lines files and stdin come as a :class:`LineRows` (an iterator like the others, which also lets a
    consumer read the lines in bulk); everything else as a generator."""
    path = str(path)
    stats = stats if stats is not None else ReadStats()
    check_choice("--on-error", on_error, ON_ERROR)
    if fmt is not None:
        check_choice("--format", fmt, FORMATS)
    if (fmt or _kind(path)) == "lines" and (path == "-" or Path(path).is_file()):
        sniffed = _sniff(path)  # an endpoint log in a .log/.txt file or on stdin: read as such
        if sniffed:
            return _iter_rows(path, text_field, on_error, stats, sniffed)
        return LineRows(path, text_field, on_error, stats)
    return _iter_rows(path, text_field, on_error, stats, fmt)


def _iter_rows(path: str, text_field: str, on_error: str, stats: ReadStats, fmt: str | None) -> Iterator[dict]:
    if path != "-" and not Path(path).exists():
        raise DataError(f"{path}: no such file")
    if path != "-" and Path(path).is_dir():
        for p in sorted(Path(path).rglob("*")):
            if p.is_file() and p.name.lower().endswith(TEXT_EXT):
                yield from iter_rows(p, text_field, on_error, stats)
        return
    kind = fmt or _kind(path)
    if kind in LOG_KINDS:
        yield from _iter_log(path, kind, on_error, stats)
        return
    if kind in DOC_KINDS:
        if path == "-":
            raise DataError(f"--format {kind} reads files or directories, not stdin")
        yield from _iter_documents(path, kind, on_error, stats)
        return
    if kind == "parquet":
        yield from _iter_parquet(path, text_field, on_error, stats)
        return
    if kind in ("csv", "tsv"):
        yield from _iter_csv(path, text_field, on_error, stats, "\t" if kind == "tsv" else ",")
        return
    lines = _iter_lines(path, stats, on_error)
    if kind == "lines" and path == "-":
        # stdin: JSON Lines if the first non-empty line is a JSON object, else plain lines
        first = None
        for n, line in lines:
            if line.strip():
                first = (n, line)
                break
        if first is None:
            return
        kind = "jsonl" if first[1].lstrip().startswith("{") else "lines"
        lines = _chain([first], lines)
    for n, line in lines:
        if kind == "lines":
            row = _line_row(n, line, stats)
            if row is not None:
                yield row
            continue
        if not line.strip():
            continue
        where = f"{path}: line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            _fail(stats, on_error, f"{where}: not valid JSON ({e.msg} at column {e.colno})", "malformed JSON")
            continue
        except (ValueError, RecursionError) as e:  # integers past Python's digit limit; nesting too deep
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(";")[0]
            _fail(stats, on_error, f"{where}: not valid JSON ({why})", "malformed JSON")
            continue
        if not isinstance(obj, dict):
            _fail(stats, on_error, f"{where}: expected a JSON object, got {type(obj).__name__}", "not an object")
            continue
        if text_field not in obj:  # a process-creation event of an endpoint log (Sysmon, ECS, osquery...)?
            got = logs.event_rows(obj, str(n))
            if got is not None:
                yield from _log_rows(((n, g) for g in got), path, on_error, stats)
                continue
        yield from _checked_row(obj, where, text_field, n, stats, on_error)


def _checked_row(obj: dict, where: str, text_field: str, n: int, stats: ReadStats, on_error: str) -> Iterator[dict]:
    """The row of one record, counted; or nothing, the record failed (raised, or counted with on_error skip)."""
    try:
        row = _norm_row(obj, where, text_field, n)
    except _RowError as e:
        _fail(stats, on_error, str(e), e.reason)
        return
    stats.rows += 1
    yield row


LOG_KINDS = ("auditd", "winxml", "evtx")


def _sniff(path: str) -> str | None:
    """'auditd' or 'winxml' when the first non-blank line says so (files: their first 64 KiB; stdin: what is
    buffered, without consuming it), else None."""
    if path == "-":
        peek = getattr(sys.stdin.buffer, "peek", None)
        head = peek(1 << 16) if peek else b""
    else:
        try:
            with _open_binary(path) as f:
                head = f.read(1 << 16)
        except (OSError, EOFError, zlib.error):
            return None
    first = next((x.strip() for x in head.split(b"\n") if x.strip()), b"")
    first = first.lstrip(b"\xef\xbb\xbf")
    if first.startswith((b"<?xml", b"<Events", b"<Event ", b"<Event>")):
        return "winxml"
    return "auditd" if logs.is_audit_line(first) else None


def _iter_log(path: str, kind: str, on_error: str, stats: ReadStats) -> Iterator[dict]:
    if kind == "evtx":
        if path == "-":
            raise DataError("--format evtx reads files or directories, not stdin")
        yield from _log_rows(logs.evtx_events(path), path, on_error, stats)
        return
    f = _open_binary(path)
    try:
        if kind == "winxml":
            try:
                yield from _log_rows(logs.xml_events(f, path), path, on_error, stats)
            except Exception as e:  # lxml's XMLSyntaxError, beyond what recover mends
                raise DataError(f"{path}: not readable as Windows event XML ({str(e)[:200]})") from None
        else:
            yield from _log_rows(logs.audit_events(enumerate(f, 1)), path, on_error, stats)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _log_rows(events, path: str, on_error: str, stats: ReadStats) -> Iterator[dict]:
    """Rows of (line or record number, row or reason) pairs: events of other kinds and records without a
    command line are counted skips whatever --on-error says (a whole Sysmon log is a fair input); malformed
    records are errors (or counted skips with --on-error skip)."""
    for n, r in events:
        if isinstance(r, logs.NotAProcess):
            stats.skip("not a process creation")
        elif isinstance(r, logs.NoCommandLine):
            stats.skip("no command line")
        elif isinstance(r, Exception):
            _fail(stats, on_error, f"{path}: line {n}: {r}", "malformed record")
        else:
            stats.rows += 1
            yield r


def _chain(first: list, rest: Iterable):
    yield from first
    yield from rest


class LineRows:
    """The rows of a plain-lines file, or of stdin (JSON Lines if its first non-blank line is a JSON object,
    else plain lines): an iterator of rows like :func:`iter_rows` gives for any input. Before iterating, a
    consumer may instead read whole lines in bulk (``bulk_ok``, ``blocks``, ``block_rows``) and get the same
    rows, line numbers, errors and counts as iterating would give."""

    def __init__(self, path: str, text_field: str, on_error: str, stats: ReadStats):
        self.path, self.text_field, self.on_error, self.stats = path, text_field, on_error, stats
        self._it: Iterator[dict] | None = None

    def __iter__(self) -> "LineRows":
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._it = _iter_rows(self.path, self.text_field, self.on_error, self.stats, "lines")
        return next(self._it)

    def bulk_ok(self) -> bool:
        """Whether ``blocks`` may be used: nothing iterated yet, and plain lines (for stdin: its first
        non-blank line, seen without consuming it, is not a JSON object; undecided counts as no)."""
        if self._it is not None:
            return False
        if self.path != "-":
            return True
        peek = getattr(sys.stdin.buffer, "peek", None)
        if peek is None:
            return False
        for raw in peek(1 << 16).split(b"\n")[:-1]:  # whole lines only
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                return False
            if "\x00" in line:
                return False
            if line.strip():
                return not line.lstrip().startswith("{")
        return False

    def blocks(self, size: int = 1 << 22) -> Iterator[tuple[int, memoryview]]:
        """(number of its first line, whole lines with their newlines), about ``size`` bytes at a time, read
        into one reused buffer: each block is a view that is valid until the next one is asked for. A line
        that outgrows MAX_LINE_BYTES before its newline is failed here (raised, or counted and left out, its
        line number kept); one that ends within its block is left to the consumer, which must check line
        lengths (or use ``block_rows``)."""
        import numpy as np

        self._it = iter(())  # bulk reading consumes the input
        f = _open_binary(self.path)
        store = bytearray(2 * size)
        have, n, skipping = 0, 1, False  # bytes held (the start of an unfinished line), its line number
        try:
            while True:
                if len(store) - have < size:  # a long line: a bigger buffer (the old one may still be viewed)
                    bigger = bytearray(2 * len(store))
                    bigger[:have] = store[:have]
                    store = bigger
                try:
                    got = f.readinto(memoryview(store)[have:have + size])
                except (EOFError, OSError, zlib.error) as e:
                    raise _unreadable(self.path, n, e) from None
                if not got:
                    if have and not skipping:
                        yield n, memoryview(store)[:have]
                    return
                new, have = have, have + got
                if skipping:  # the rest of an oversized line
                    nl = store.find(b"\n", new, have)
                    if nl < 0:
                        have = 0
                        continue
                    store[: have - nl - 1] = store[nl + 1:have]
                    have, skipping, n = have - nl - 1, False, n + 1
                cut = store.rfind(b"\n", 0, have) + 1
                if cut:
                    yield n, memoryview(store)[:cut]
                    n += int(np.count_nonzero(np.frombuffer(store, dtype=np.uint8, count=cut) == 10))
                    store[: have - cut] = store[cut:have]
                    have -= cut
                if have > MAX_LINE_BYTES:
                    _fail(self.stats, self.on_error, f"{self.path}: line {n}: longer than {MAX_LINE_BYTES} bytes",
                          "too long")
                    have, skipping = 0, True
        finally:
            if f is not sys.stdin.buffer:
                f.close()

    def block_rows(self, first: int, block: bytes | memoryview) -> Iterator[dict]:
        """The rows of one block from ``blocks``, line by line, with every check that iterating applies."""
        block = bytes(block)
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        for i, raw in enumerate(lines):
            n = first + i
            if len(raw) + (i < len(lines) - 1 or block.endswith(b"\n")) > MAX_LINE_BYTES:
                _fail(self.stats, self.on_error, f"{self.path}: line {n}: longer than {MAX_LINE_BYTES} bytes",
                      "too long")
                continue
            line = _decode_line(raw, self.path, n, self.stats, self.on_error)
            row = _line_row(n, line, self.stats) if line is not None else None
            if row is not None:
                yield row


_SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape decodes invalid UTF-8 bytes to


def _iter_csv(path: str, text_field: str, on_error: str, stats: ReadStats, delimiter: str) -> Iterator[dict]:
    csv.field_size_limit(MAX_LINE_BYTES)
    f = _open_binary(path)
    try:
        # invalid UTF-8 decodes to lone surrogates, found per row below (an error or a counted skip)
        text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.DictReader(text, delimiter=delimiter)
        try:
            header = reader.fieldnames
        except (EOFError, OSError, zlib.error) as e:
            raise _unreadable(path, 1, e) from None
        except csv.Error as e:
            raise DataError(f"{path}: line 1: malformed CSV header ({e})") from None
        if header and any(_SURROGATE.search(h) for h in header):
            raise DataError(f"{path}: line 1: invalid UTF-8 in the header")
        if not header or text_field not in header:
            raise DataError(f"{path}: line 1: no {text_field!r} column (columns: {header})")
        n = 1
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as e:
                raise _unreadable(path, n + 1, e) from None
            except csv.Error as e:
                raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
            n = reader.line_num
            where = f"{path}: line {n}"
            if rec.get(text_field) is None:
                _fail(stats, on_error, f"{where}: row has no {text_field!r} value", "missing text")
                continue
            if any(isinstance(v, str) and _SURROGATE.search(v) for v in rec.values()):
                _fail(stats, on_error, f"{where}: invalid UTF-8", "invalid UTF-8")
                continue
            if "\x00" in rec[text_field]:
                _fail(stats, on_error, f"{where}: contains NUL bytes", "NUL bytes")
                continue
            obj = {k: v for k, v in rec.items() if k is not None and v not in (None, "")}
            obj.setdefault(text_field, "")
            if "meta" in obj:
                try:
                    obj["meta"] = json.loads(obj["meta"])
                except (ValueError, RecursionError):
                    pass  # kept as text
            yield from _checked_row(obj, where, text_field, n, stats, on_error)
    finally:
        f.close()


def _iter_parquet(path: str, text_field: str, on_error: str, stats: ReadStats) -> Iterator[dict]:
    import pyarrow.parquet as pq

    def unreadable(e: Exception) -> DataError:
        return DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {str(e)[:300]})")

    # pyarrow raises several types (OSError, ArrowInvalid, ArrowNotImplementedError, ...) for a bad file,
    # when it opens it or only when a damaged page is read
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except Exception as e:
        raise unreadable(e) from None
    if text_field not in names:
        raise DataError(f"{path}: no {text_field!r} column (columns: {names})")
    keep = [c for c in ("id", text_field, "label", "source", "group", "weight") if c in names]
    batches = pf.iter_batches(batch_size=65536, columns=keep)
    n = 0
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            cols = {c: batch.column(c).to_pylist() for c in keep}
        except Exception as e:
            raise unreadable(e) from None
        for i in range(batch.num_rows):
            n += 1
            obj = {c: cols[c][i] for c in keep}
            where = f"{path}: row {n}"
            if obj[text_field] is None:
                _fail(stats, on_error, f"{where}: {text_field!r} is null", "null text")
                continue
            yield from _checked_row(obj, where, text_field, n, stats, on_error)


def _decode_document(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")  # most mis-declared pages and mails are Windows-1252


def _iter_documents(path: str, kind: str, on_error: str, stats: ReadStats) -> Iterator[dict]:
    """.eml files and HTML pages (a row each, id = file path), mbox files (a row per message, id = path#n)."""
    from .tasks.mail import message_row

    def too_big(n: int, where: str) -> bool:
        if n > MAX_LINE_BYTES:
            _fail(stats, on_error, f"{where}: {n:,} bytes is over the {MAX_LINE_BYTES:,}-byte limit for one item",
                  "item too large")
            return True
        return False

    try:
        if kind == "mbox":
            import mailbox

            box = mailbox.mbox(path, create=False)
            try:
                for i, key in enumerate(box.iterkeys()):
                    raw = box.get_bytes(key)
                    if too_big(len(raw), f"{path}: message {i + 1}"):
                        continue
                    stats.rows += 1
                    yield message_row(raw, f"{path}#{i + 1}")
            finally:
                box.close()
            return
        size = Path(path).stat().st_size
        if too_big(size, path):
            return
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    if b"\x00" in raw and kind == "html":
        _fail(stats, on_error, f"{path}: NUL bytes in an HTML page", "NUL byte")
        return
    stats.rows += 1
    if kind == "eml":
        yield message_row(raw, path)
    else:
        yield {"id": path, "text": _decode_document(raw)}


def read_rows(path: str | Path, **kw) -> list[dict]:
    return list(iter_rows(path, **kw))


def check_labels(rows: list[dict], labels: tuple[str, ...], path: str) -> None:
    """Every given label must be one of the task's labels."""
    bad = {}
    for r in rows:
        lab = r.get("label")
        if lab is not None and lab not in labels:
            bad.setdefault(lab, r["id"])
    if bad:
        examples = ", ".join(f"{k!r} (row id {v})" for k, v in list(bad.items())[:5])
        raise DataError(f"{path}: labels {examples} are not among the task's labels {list(labels)}")


def check_choice(option: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise SmallworldError(f"{option} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def check_input(path: str | Path) -> None:
    """An input, checked before any work is done: '-' (stdin), a readable file, or a directory holding at
    least one file of a known kind."""
    path = str(path)
    if path == "-":
        return
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    if p.is_dir():
        if not any(q.is_file() and q.name.lower().endswith(TEXT_EXT) for q in p.rglob("*")):
            raise DataError(f"{path}: a directory with no readable files ({', '.join(TEXT_EXT)})")
        return
    if not os.access(p, os.R_OK):
        raise DataError(f"{path}: not readable")


def check_output_dir(path: str | Path) -> Path:
    """An output folder, checked before any work: not a file, and it or its nearest existing parent writable.
    Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SmallworldError(f"{path}: exists and is not a directory")
    q = path
    while not q.exists():
        q = q.parent
    if not q.is_dir() or not os.access(q, os.W_OK):
        raise SmallworldError(f"{path}: cannot be created ({q} is not a writable directory)")
    return path


def check_output(path: str | Path) -> Path:
    """An output file's path, checked before any work is done: not a directory, and its folder exists or can
    be made (it is made). Nothing is written to the file itself."""
    path = Path(path)
    if path.is_dir():
        raise SmallworldError(f"{path}: is a directory; give a file name for the output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SmallworldError(f"{path}: cannot create its folder: {e.strerror or e}") from None
    if not os.access(path.parent, os.W_OK):
        raise SmallworldError(f"{path}: its folder {path.parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """A text file written beside ``path`` and renamed onto it when the block ends without an error (on an
    error it is removed): a reader never sees half an output, and a failed run leaves the old file as it was."""
    path = check_output(path)
    if path.exists() and not path.is_file():  # /dev/null, a FIFO, a terminal: written as it is
        with open(path, "w", encoding="utf-8") as f:
            yield f
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n
