"""Process-creation events as endpoints write them, read into rows (``text`` = the command line).

Read by content, in any file :func:`smallworld.data.iter_rows` takes (JSON Lines, plain text, stdin):

* **Sysmon event 1** and **Windows Security 4688**: as Winlogbeat / Elastic Agent JSON (``winlog.event_data``),
  as the JSON of the ``evtx`` package (``Event.System`` / ``Event.EventData``), as Windows event XML
  (``wevtutil qe /f:xml``, Windows Event Forwarding; ``.xml`` files or content starting ``<Event``), and as
  ``.evtx`` files through the ``evtx`` package (``pip install 'smallworld[endpoint]'``);
* **Linux auditd**: ``type=SYSCALL`` / ``EXECVE`` / ``PROCTITLE`` records grouped by event serial (arguments
  hex-decoded; EXECVE preferred, PROCTITLE where it is missing);
* **osquery** ``process_events`` results (event, batch ``diffResults`` and ``snapshot`` forms);
* **ECS** (``process.command_line``, nested or dotted keys) and **OCSF** process activity (``process.cmd_line``).

Each row keeps the event's context under ``event``: ``kind``, ``id``, ``time``, ``host``, ``user``, ``image``,
``parent_image``, ``parent_command_line``, ``pid``, ``ppid`` (those the record has); ``smallworld score``
writes it back beside the score. A record of a known kind without a command line is a counted skip ("no
command line"), with its line or offset; an event of another kind (a network connection, a logon) is a
counted skip too ("not a process creation"), so a whole Sysmon log can be given as it is.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterable, Iterator

CONTEXT = ("kind", "id", "time", "host", "user", "image", "parent_image", "parent_command_line", "pid", "ppid")
AUDIT_RE = re.compile(rb"^(?:node=(\S+) )?type=(\w+) msg=audit\((\d+(?:\.\d+)?):(\d+)\): ?(.*)$")
_AUDIT_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


class NotAProcess(Exception):
    """An event of a known log that is not a process creation (skipped and counted)."""


class NoCommandLine(Exception):
    """A process-creation record without a command line (skipped and counted)."""


def _get(d, *path):
    """d[path[0]][path[1]]..., or the dotted key ("process.command_line"), or None."""
    cur = d
    for i, k in enumerate(path):
        if isinstance(cur, dict) and k in cur:
            cur = cur[k]
            continue
        if isinstance(cur, dict) and ".".join(path[i:]) in cur:
            return cur[".".join(path[i:])]
        return None
    return cur


def _text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, dict):  # XML-ish JSON: {"#text": ...}
        v = v.get("#text")
    if isinstance(v, list):
        v = " ".join(map(str, v))
    v = str(v) if v is not None else None
    return v if v not in ("", "-") else None


def _row(kind: str, cmd, ctx: dict, fallback_id: str) -> dict:
    cmd = _text(cmd)
    if not cmd:
        raise NoCommandLine(kind)
    ev = {"kind": kind}
    for k in CONTEXT[1:]:
        v = _text(ctx.get(k))
        if v is not None:
            ev[k] = v
    return {"id": ev.get("id") or fallback_id, "text": cmd, "event": ev}


# -- Windows: Sysmon 1 and Security 4688 ----------------------------------------------------------------------
def _windows(event_id, data: dict, system: dict, fallback_id: str) -> dict:
    """A Sysmon 1 / Security 4688 record's row, from its EventData fields and System fields."""
    try:
        eid = int(_text(event_id) or -1)
    except ValueError:
        eid = -1
    provider = str(_text(system.get("provider")) or "").lower()
    if eid == 1 and ("sysmon" in provider or "Image" in data or not provider):
        user = data.get("User")
        return _row("sysmon-1", data.get("CommandLine"), {
            "id": system.get("record_id") and f"{system.get('host') or ''}:{_text(system['record_id'])}".lstrip(":"),
            "time": data.get("UtcTime") or system.get("time"), "host": system.get("host"), "user": user,
            "image": data.get("Image"), "parent_image": data.get("ParentImage"),
            "parent_command_line": data.get("ParentCommandLine"), "pid": data.get("ProcessId"),
            "ppid": data.get("ParentProcessId")}, fallback_id)
    if eid == 4688:
        dom, name = _text(data.get("SubjectDomainName")), _text(data.get("SubjectUserName"))
        return _row("security-4688", data.get("CommandLine") or data.get("ProcessCommandLine"), {
            "id": system.get("record_id") and f"{system.get('host') or ''}:{_text(system['record_id'])}".lstrip(":"),
            "time": system.get("time"), "host": system.get("host"),
            "user": f"{dom}\\{name}" if dom and name else name, "image": data.get("NewProcessName"),
            "parent_image": data.get("ParentProcessName"), "pid": data.get("NewProcessId"),
            "ppid": data.get("ProcessId")}, fallback_id)
    raise NotAProcess(f"windows event {eid}")


def _winlogbeat(obj: dict, fallback_id: str) -> dict:
    w = obj["winlog"]
    system = {"provider": w.get("provider_name") or _get(obj, "event", "provider"), "record_id": w.get("record_id"),
              "host": w.get("computer_name") or _get(obj, "host", "name"), "time": obj.get("@timestamp")}
    return _windows(w.get("event_id") or _get(obj, "event", "code"), w.get("event_data") or {}, system, fallback_id)


def _evtx_json(obj: dict, fallback_id: str) -> dict:
    ev = obj["Event"]
    s = ev.get("System") or {}
    data = ev.get("EventData") or {}
    if isinstance(data, dict) and isinstance(data.get("Data"), list):  # [{"#attributes": {"Name": ..}, "#text": ..}]
        data = {(_get(d, "#attributes", "Name") or ""): d.get("#text") for d in data["Data"] if isinstance(d, dict)}
    system = {"provider": _get(s, "Provider", "#attributes", "Name"), "record_id": s.get("EventRecordID"),
              "host": s.get("Computer"), "time": _get(s, "TimeCreated", "#attributes", "SystemTime")}
    return _windows(s.get("EventID"), data if isinstance(data, dict) else {}, system, fallback_id)


def xml_events(f, source: str) -> Iterator[tuple[int, dict | Exception]]:
    """(line, row or the reason to skip) per ``<Event>`` of a Windows event XML stream (one document, or the
    root-less concatenation ``wevtutil qe`` writes). Entities are not resolved and nothing is fetched."""
    from lxml import etree

    class Wrapped:  # <Events> around the stream, XML declarations dropped, so both forms parse as one document
        def __init__(self, raw):
            self.parts, self.raw, self.done = [b"<Events>"], raw, False

        def read(self, n=-1):
            if self.parts:
                return self.parts.pop()
            if self.done:
                return b""
            chunk = self.raw.read(1 << 16)
            if not chunk:
                self.done = True
                return b"</Events>"
            return re.sub(rb"<\?xml[^>]*\?>", b"", chunk)

    parser = etree.iterparse(Wrapped(f), events=("end",), resolve_entities=False, no_network=True, huge_tree=False,
                             recover=True)
    for _, el in parser:
        if etree.QName(el).localname != "Event":
            continue
        line = el.sourceline or 0
        sys_ = {etree.QName(c).localname: c for c in el.iterfind("{*}System/*")}
        data = {d.get("Name") or "": (d.text or "") for d in el.iterfind("{*}EventData/{*}Data")}
        system = {"provider": sys_["Provider"].get("Name") if "Provider" in sys_ else None,
                  "record_id": sys_["EventRecordID"].text if "EventRecordID" in sys_ else None,
                  "host": sys_["Computer"].text if "Computer" in sys_ else None,
                  "time": sys_["TimeCreated"].get("SystemTime") if "TimeCreated" in sys_ else None}
        try:
            yield line, _windows(sys_["EventID"].text if "EventID" in sys_ else None, data, system, str(line))
        except (NotAProcess, NoCommandLine) as e:
            yield line, e
        el.clear()


def evtx_events(path: str) -> Iterator[tuple[int, dict | Exception]]:
    """(record number, row or the reason to skip) per record of an ``.evtx`` file (the ``evtx`` package)."""
    import json

    try:
        from evtx import PyEvtxParser
    except ImportError:
        from .errors import DataError

        raise DataError(f"{path}: reading .evtx needs the evtx package: pip install 'smallworld[endpoint]'") from None
    try:
        records = PyEvtxParser(path).records_json()
    except (OSError, RuntimeError) as e:
        from .errors import DataError

        raise DataError(f"{path}: not a readable EVTX file ({str(e)[:200]})") from None
    for rec in records:
        if isinstance(rec, Exception):  # a record the parser could not read
            yield 0, ValueError(f"unreadable record ({rec})")
            continue
        n = int(rec.get("event_record_id") or 0)
        try:
            yield n, _evtx_json(json.loads(rec["data"]), str(n))
        except (NotAProcess, NoCommandLine) as e:
            yield n, e
        except (ValueError, KeyError, TypeError) as e:
            yield n, ValueError(f"malformed record ({e})")


# -- ECS, OCSF, osquery ---------------------------------------------------------------------------------------
def _ecs(obj: dict, fallback_id: str) -> dict:
    cmd = _get(obj, "process", "command_line") or _get(obj, "process", "args")
    user = _get(obj, "user", "name")
    dom = _get(obj, "user", "domain")
    return _row("ecs", cmd, {
        "id": _get(obj, "event", "id") or _get(obj, "process", "entity_id"), "time": obj.get("@timestamp"),
        "host": _get(obj, "host", "name") or _get(obj, "host", "hostname"),
        "user": f"{dom}\\{user}" if dom and user else user, "image": _get(obj, "process", "executable"),
        "parent_image": _get(obj, "process", "parent", "executable"),
        "parent_command_line": _get(obj, "process", "parent", "command_line"), "pid": _get(obj, "process", "pid"),
        "ppid": _get(obj, "process", "parent", "pid")}, fallback_id)


def _ocsf(obj: dict, fallback_id: str) -> dict:
    t = obj.get("time")
    return _row("ocsf", _get(obj, "process", "cmd_line"), {
        "id": _get(obj, "metadata", "uid"), "time": _epoch(t / 1000) if isinstance(t, (int, float)) else t,
        "host": _get(obj, "device", "hostname"),
        "user": _get(obj, "actor", "user", "name") or _get(obj, "process", "user", "name"),
        "image": _get(obj, "process", "file", "path"),
        "parent_image": _get(obj, "process", "parent_process", "file", "path"),
        "parent_command_line": _get(obj, "process", "parent_process", "cmd_line"), "pid": _get(obj, "process", "pid"),
        "ppid": _get(obj, "process", "parent_process", "pid")}, fallback_id)


def _osquery(obj: dict, fallback_id: str) -> list[dict | Exception]:
    """One row per process in an osquery result (event form: ``columns``; batch: ``diffResults.added``;
    snapshot: ``snapshot``)."""
    if obj.get("name") and "process" not in str(obj.get("name")):
        return [NotAProcess(f"osquery {obj.get('name')}")]
    cols = [obj["columns"]] if isinstance(obj.get("columns"), dict) else \
        list(_get(obj, "diffResults", "added") or []) + list(obj.get("snapshot") or [])
    out: list[dict | Exception] = []
    for i, c in enumerate(cols):
        if not isinstance(c, dict):
            out.append(NoCommandLine("osquery"))
            continue
        t = c.get("time") or obj.get("unixTime")
        try:
            out.append(_row("osquery", c.get("cmdline"), {
                "id": f"{obj.get('hostIdentifier') or ''}:{c.get('pid')}:{t}".strip(":"),
                "time": _epoch(float(t)) if t not in (None, "") else obj.get("calendarTime"),
                "host": obj.get("hostIdentifier"), "user": c.get("username") or c.get("uid"), "image": c.get("path"),
                "pid": c.get("pid"), "ppid": c.get("parent")}, f"{fallback_id}.{i + 1}"))
        except (NoCommandLine, ValueError) as e:
            out.append(e if isinstance(e, NoCommandLine) else NoCommandLine("osquery"))
    return out


def _epoch(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_rows(obj: dict, fallback_id: str) -> list[dict | Exception] | None:
    """The rows of one JSON record of a known endpoint log (or the reasons to skip them), or None when the
    record is of no known kind."""
    try:
        if isinstance(obj.get("winlog"), dict):
            return [_winlogbeat(obj, fallback_id)]
        if isinstance(obj.get("Event"), dict) and "System" in obj["Event"]:
            return [_evtx_json(obj, fallback_id)]
        if "columns" in obj or "diffResults" in obj or ("snapshot" in obj and "hostIdentifier" in obj):
            return _osquery(obj, fallback_id)
        if obj.get("class_uid") == 1007 or _get(obj, "process", "cmd_line") is not None:
            return [_ocsf(obj, fallback_id)]
        if _get(obj, "process", "command_line") is not None or _get(obj, "process", "args") is not None:
            return [_ecs(obj, fallback_id)]
    except (NotAProcess, NoCommandLine) as e:
        return [e]
    return None


# -- Linux auditd ---------------------------------------------------------------------------------------------
def is_audit_line(raw: bytes) -> bool:
    return AUDIT_RE.match(raw.strip()) is not None


def _audit_value(v: str) -> str:
    if v.startswith('"') and v.endswith('"') and len(v) >= 2:
        return v[1:-1]
    if _HEX.match(v):
        try:
            return bytes.fromhex(v).decode("utf-8", "replace")
        except ValueError:
            return v
    return v


def _shell_join(args: list[str]) -> str:
    return " ".join(f'"{a}"' if (not a or any(c.isspace() for c in a)) and '"' not in a else a for a in args)


def audit_events(lines: Iterable[tuple[int, bytes]], pending_max: int = 256) -> Iterator[tuple[int, dict | Exception]]:
    """(first line, row or the reason to skip) per auditd event with an EXECVE or PROCTITLE record, its
    records grouped by serial (``msg=audit(TIME:SERIAL)``); at most ``pending_max`` events are held open (a
    log's records of one event are adjacent, so memory stays bounded)."""
    open_: dict[tuple, dict] = {}

    def finish(key) -> tuple[int, dict | Exception]:
        ev = open_.pop(key)
        sc, ex, pt = ev.get("SYSCALL", {}), ev.get("EXECVE"), ev.get("PROCTITLE")
        if ex is not None:
            try:
                argc = int(ex.get("argc", "0"))
            except ValueError:
                argc = 0
            cmd = _shell_join([_audit_value(ex.get(f"a{i}", "")) for i in range(argc)])
        elif pt is not None:
            cmd = _audit_value(pt.get("proctitle", "")).replace("\x00", " ").strip()
        else:
            return ev["line"], NotAProcess("auditd")
        try:
            return ev["line"], _row("auditd", cmd, {
                "id": f"{ev['host'] or ''}:{key[1]}".lstrip(":"), "time": _epoch(float(key[0])), "host": ev["host"],
                "user": sc.get("auid") if sc.get("auid") not in (None, "4294967295") else sc.get("uid"),
                "image": _audit_value(sc["exe"]) if "exe" in sc else None, "pid": sc.get("pid"), "ppid": sc.get("ppid")},
                str(ev["line"]))
        except NoCommandLine as e:
            return ev["line"], e

    for n, raw in lines:
        m = AUDIT_RE.match(raw.strip())
        if m is None:
            if raw.strip():
                yield n, ValueError("not an audit record")
            continue
        host, typ, ts, serial, rest = (x.decode("utf-8", "replace") if x is not None else None for x in m.groups())
        key = (ts, serial, host)
        if key not in open_:
            if len(open_) >= pending_max:
                yield finish(next(iter(open_)))
            open_[key] = {"line": n, "host": host}
        if typ in ("SYSCALL", "EXECVE", "PROCTITLE") and typ not in open_[key]:
            open_[key][typ] = dict(_AUDIT_KV.findall(rest))
        if typ == "EOE":
            yield finish(key)
    while open_:
        yield finish(next(iter(open_)))
