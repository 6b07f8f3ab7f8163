"""The CLI contract, end to end, with a real llama.cpp server as the teacher; kill-and-resume of labelling."""

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import ROOT, cli
from smallworld.demo import EXAMPLES

SEED = EXAMPLES / "cmdlines_seed.jsonl"
DEV = EXAMPLES / "cmdlines_dev.jsonl"
TELE = EXAMPLES / "cmdlines_telemetry.jsonl"


def _usage(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) calls, (\d+) cache hits", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


def test_train_evaluate_score_label_with_a_server_teacher(llama_server, tmp_path):
    out = tmp_path / "model"
    cache = tmp_path / "cache.sqlite"
    r = cli("train", "--task", "cmdlines", "--labelled", SEED, "--unlabelled", TELE, "--dev", DEV,
            "--teacher", llama_server.url, "--budget", 10, "--calibration", 8, "--teacher-eval", 6,
            "--cache", cache, "--out", out, "--prompt", "hybrid")  # SmolLM2 needs demonstrations
    for row in ("teacher", "seed_only", "distilled"):
        assert row in r.stdout
    calls, hits = _usage(r.stderr)
    assert calls == 10 + 8 + 6 and hits == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["chosen"] == 10 and m["teacher"]["usage"]["calls"] == 24
    assert {"model.json", "weights.bin", "manifest.json", "teacher_labels.jsonl", "seed_only/model.json"} <= set(m["artifacts"])
    assert m["inputs"][str(SEED)]["sha256"]
    # the same run again asks nothing
    r2 = cli("train", "--task", "cmdlines", "--labelled", SEED, "--unlabelled", TELE, "--dev", DEV,
             "--teacher", llama_server.url, "--budget", 10, "--calibration", 8, "--teacher-eval", 6,
             "--cache", cache, "--out", tmp_path / "again", "--prompt", "hybrid")
    assert _usage(r2.stderr) == (0, 24)

    ev = json.loads(cli("evaluate", out, DEV, "--json").stdout)
    assert {"n", "roc_auc", "pr_auc", "tpr_at_fpr", "ece", "per_source"} <= set(ev)
    assert set(ev["tpr_at_fpr"]) == {"0.0001", "0.001", "0.01"} and ev["n"] == 24

    lines = "powershell -enc SQBFAFgA\nls -la\n"
    rows = [json.loads(x) for x in cli("score", out, "-", input=lines).stdout.splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"] and all(0 <= r["score"] <= 1 for r in rows)
    rows = [json.loads(x) for x in cli("score", out, DEV).stdout.splitlines()]
    assert len(rows) == 24 and rows[0]["id"].startswith("ex-")

    lab = tmp_path / "labels.jsonl"
    cli("label", "--task", "cmdlines", "--teacher", llama_server.url, TELE, "--labelled", SEED, "--out", lab,
        "--cache", cache, "--prompt", "hybrid", "--teacher-only")
    got = [json.loads(x) for x in lab.read_text().splitlines()]
    assert got and all(set(g["probs"]) == set(g["raw"]) == set(g["teacher"]) == {"malicious", "benign"} for g in got)
    assert all(abs(sum(g["probs"].values()) - 1) < 1e-4 and g["probs"] == g["teacher"] for g in got)
    # the default is the calibrated teacher alone
    cli("label", "--task", "cmdlines", "--teacher", llama_server.url, TELE, "--labelled", SEED, "--out", lab,
        "--cache", cache, "--prompt", "hybrid")
    assert [json.loads(x) for x in lab.read_text().splitlines()] == got
    # --combine: the teacher together with seed-trained students; all answers come from the cache
    r = cli("label", "--task", "cmdlines", "--teacher", llama_server.url, TELE, "--labelled", SEED, "--out", lab,
            "--cache", cache, "--prompt", "hybrid", "--combine")
    assert _usage(r.stderr)[0] == 0
    comb = [json.loads(x) for x in lab.read_text().splitlines()]
    assert [c["teacher"] for c in comb] == [g["teacher"] for g in got]
    assert any(abs(c["probs"]["malicious"] - c["teacher"]["malicious"]) > 1e-3 for c in comb)
    assert "and one also trained on the teacher's answers" in r.stderr
    # without the self-trained student, and with the other rule (one regression on all log-odds): other
    # probabilities from the same answers
    for opt in (["--seed-student"], ["--combine-rule", "learned"]):
        r = cli("label", "--task", "cmdlines", "--teacher", llama_server.url, TELE, "--labelled", SEED, "--out", lab,
                "--cache", cache, "--prompt", "hybrid", "--combine", *opt)
        assert _usage(r.stderr)[0] == 0
        other = [json.loads(x) for x in lab.read_text().splitlines()]
        assert [c["teacher"] for c in other] == [g["teacher"] for g in got]
        assert any(abs(a["probs"]["malicious"] - b["probs"]["malicious"]) > 1e-3 for a, b in zip(other, comb)), opt


def test_killed_labelling_resumes_without_asking_twice(llama_server, tmp_path, data_dir):
    cache = tmp_path / "cache.sqlite"
    items = tmp_path / "items.jsonl"
    src = [json.loads(x) for x in __import__("gzip").open(data_dir / "cmdlines" / "telemetry.jsonl.gz", "rt")][:40]
    items.write_text("".join(json.dumps(r) + "\n" for r in src))
    args = [sys.executable, "-m", "smallworld.cli", "label", "--task", "cmdlines", "--teacher", llama_server.url,
            str(items), "--labelled", str(SEED), "--calibration", "0", "--out", str(tmp_path / "l.jsonl"), "--cache", str(cache),
            "--concurrency", "2"]
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if cache.exists():
            try:
                done = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            except sqlite3.OperationalError:
                continue
        if done >= 8:
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    kept = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert 8 <= kept < 40, "the kill must land mid-run"
    r = cli("label", "--task", "cmdlines", "--teacher", llama_server.url, items, "--labelled", SEED,
            "--calibration", "0", "--out", tmp_path / "l.jsonl", "--cache", cache)
    calls, hits = _usage(r.stderr)
    assert hits == kept and calls == 40 - kept  # nothing asked twice, nothing lost
    assert sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 40


def test_user_mistakes_get_one_clear_line_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ls", "label": "evil"}\n')
    r = cli("train", "--task", "cmdlines", "--labelled", bad, "--teacher", "none", "--out", tmp_path / "m", check=False)
    assert r.returncode == 2 and "error:" in r.stderr and "'evil'" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--task", "nosuchtask", "--labelled", bad, "--out", tmp_path / "m", check=False)
    assert r.returncode == 2 and "unknown task" in r.stderr
    r = cli("score", tmp_path, "-", input="x\n", check=False)
    assert r.returncode == 2 and "not a smallworld model directory" in r.stderr
    r = cli("train", "--task", "cmdlines", "--labelled", SEED, "--teacher", "ftp://x", "--out", tmp_path / "m",
            "--unlabelled", TELE, check=False)
    assert r.returncode == 2 and "--teacher must be" in r.stderr
    for cmd in (["train", "--labelled", SEED], ["label", TELE]):
        r = cli(*cmd, "--task", "cmdlines", "--prompt", "zero+zero", "--out", tmp_path / "p", check=False)
        assert r.returncode == 2 and "--prompt:" in r.stderr and "Traceback" not in r.stderr
        r = cli(*cmd, "--task", "cmdlines", "--combine-rule", "average", "--out", tmp_path / "p", check=False)
        assert r.returncode == 2 and "'--combine-rule': must be one of equal, learned" in r.stderr and "Traceback" not in r.stderr


def test_custom_task_from_a_toml_file(tmp_path):
    toml = tmp_path / "triage.toml"
    toml.write_text('name = "triage"\nlabels = ["true_positive", "false_positive"]\npositive = "true_positive"\n'
                    'answers = { true_positive = "yes", false_positive = "no" }\n'
                    'instruction = "Is this alert a true positive?"\n')
    data = tmp_path / "alerts.jsonl"
    rows = [{"text": f"alert {w} host{i}", "label": "true_positive" if w == "mimikatz" else "false_positive"}
            for i in range(10) for w in ("mimikatz", "backup")]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("train", "--task", toml, "--labelled", data, "--dev", data, "--teacher", "none", "--out", tmp_path / "m")
    ev = json.loads(cli("evaluate", tmp_path / "m", data, "--json").stdout)
    assert ev["roc_auc"] == 1.0


def test_rounds_killed_mid_run_resume_to_the_same_model(llama_server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    args = ["train", "--task", "cmdlines", "--labelled", str(SEED), "--unlabelled", str(TELE), "--dev", str(DEV),
            "--teacher", llama_server.url, "--budget", "12", "--rounds", "3", "--strategy", "combined",
            "--calibration", "6", "--teacher-eval", "0", "--cache", str(cache), "--prompt", "hybrid"]
    p = subprocess.Popen([sys.executable, "-m", "smallworld.cli", *args, "--out", str(tmp_path / "a")], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    kept = 0
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
        try:
            kept = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.Error:
            continue
        if kept >= 10:  # calibration done, inside the rounds
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    kept = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert 6 <= kept < 18
    r = cli(*args, "--out", tmp_path / "a")
    calls, hits = _usage(r.stderr)
    total = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert hits == kept and calls == total - kept == 18 - kept
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [x["asked"] for x in m["teacher"]["rounds"]] == [4, 4, 4]
    # an uninterrupted run from the same answers gives the same model, asking nothing
    r2 = cli(*args, "--out", tmp_path / "b")
    assert _usage(r2.stderr) == (0, 18)
    a = json.loads((tmp_path / "a" / "model.json").read_text())["weights_sha256"]
    b = json.loads((tmp_path / "b" / "model.json").read_text())["weights_sha256"]
    assert a == b
