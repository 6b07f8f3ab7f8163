"""The analyst loop: review export -> decisions -> review import -> the next run learns them."""

import csv
import json

import pytest

from conftest import ROOT, cli
from smallworld.student.model import Model

EX = ROOT / "smallworld" / "examples"
CONFIG = EX / "alert_triage.toml"


def _config(tmp_path, labelled: list) -> str:
    cfg = tmp_path / f"c{len(labelled)}.toml"
    text = CONFIG.read_text().replace('labelled = "alerts_seed.jsonl"', f"labelled = {json.dumps([str(p) for p in labelled])}")
    for name in ("alerts_unlabelled.jsonl", "alerts_dev.jsonl"):
        text = text.replace(f'"{name}"', json.dumps(str(EX / name)))
    cfg.write_text(text)
    return cfg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    rd = tmp / "run"
    cli("run", _config(tmp, [EX / "alerts_seed.jsonl"]), "--set", "teacher.url=none", "--set", "report.enabled=false",
        "--out", rd)
    return rd


def _read_csv(p):
    with open(p, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_round_trip_changes_the_next_model(run_dir, tmp_path):
    q = tmp_path / "queue.csv"
    cli("review", "export", run_dir, "--out", q, "--n", 10, "--unlabelled", EX / "alerts_unlabelled.jsonl")
    rows = _read_csv(q)
    assert len(rows) == 10 and list(rows[0]) == ["id", "text", "reason", "teacher_probs", "student_probs",
                                                   "given_label", "choices", "decision"]
    assert all(r["reason"] == "low_confidence" and r["decision"] == "" for r in rows)
    before = Model(run_dir / "model")
    s = before.scores([r["text"] for r in rows])
    assert list(s) == sorted(s, key=lambda p: abs(p - 0.5))  # least confident first
    # the analyst decides the top two items, each against the student's current lean, and skips the rest
    flip = {r["id"]: ("false_positive" if p >= 0.5 else "true_positive") for r, p in zip(rows[:2], s[:2])}
    for r in rows:
        r["decision"] = flip.get(r["id"], "")
    with open(q, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lab = tmp_path / "reviewed.jsonl"
    r = cli("review", "import", q, "--out", lab, "--weight", 5)
    assert "wrote 2 labelled rows" in r.stdout and "skipped 8" in r.stdout
    got = [json.loads(x) for x in lab.read_text().splitlines()]
    assert {g["id"]: g["label"] for g in got} == flip and all(g["weight"] == 5 for g in got)

    rd2 = tmp_path / "run2"
    cli("run", _config(tmp_path, [EX / "alerts_seed.jsonl", lab]), "--set", "teacher.url=none",
        "--set", "report.enabled=false", "--out", rd2)
    after = Model(rd2 / "model")
    for r in rows[:2]:
        k = before.labels.index(flip[r["id"]])
        p0, p1 = before.predict_proba([r["text"]])[0, k], after.predict_proba([r["text"]])[0, k]
        assert p1 > p0 + 0.2 and p1 > 0.5, (r["text"], p0, p1)
    m = json.loads((rd2 / "model" / "manifest.json").read_text())
    assert m["counts"]["seed"] == 54 + 2 and str(lab) in m["inputs"]


def test_an_analysts_label_replaces_the_seed_label_it_corrects(run_dir, tmp_path):
    seed = [json.loads(x) for x in (EX / "alerts_seed.jsonl").read_text().splitlines()]
    row = next(r for r in seed if r["label"] == "true_positive")
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": row["id"], "text": row["text"], "reason": "label_contradicted", "teacher_probs": None,
                             "student_probs": None, "given_label": row["label"], "choices": "true_positive|false_positive",
                             "decision": "False_Positive"}) + "\n")  # label names match case-insensitively
    lab = tmp_path / "l.jsonl"
    cli("review", "import", q, "--out", lab, "--weight", 5)
    rd2 = tmp_path / "run2"
    cli("run", _config(tmp_path, [EX / "alerts_seed.jsonl", lab]), "--set", "teacher.url=none",
        "--set", "report.enabled=false", "--out", rd2)
    assert json.loads((rd2 / "model" / "manifest.json").read_text())["counts"]["seed"] == 54  # replaced, not added
    before, after = Model(run_dir / "model"), Model(rd2 / "model")
    assert after.scores([row["text"]])[0] < before.scores([row["text"]])[0] - 0.2


def test_import_rejects_unknown_labels_with_one_clear_line(tmp_path):
    q = tmp_path / "q.csv"
    q.write_text("id,text,reason,teacher_probs,student_probs,given_label,choices,decision\n"
                 "a1,ls -la,low_confidence,,,,true_positive|false_positive,\n"
                 "a2,whoami,low_confidence,,,,true_positive|false_positive,tp\n")
    r = cli("review", "import", q, "--out", tmp_path / "l.jsonl", check=False)
    assert r.returncode == 2 and "row 3 (id a2): decision 'tp' is not one of this task's labels: " \
                                  "true_positive, false_positive" in r.stderr and "Traceback" not in r.stderr
    q.write_text("id,text,label\na1,ls,x\n")
    r = cli("review", "import", q, "--out", tmp_path / "l.jsonl", check=False)
    assert r.returncode == 2 and "no 'choices', 'decision' column" in r.stderr
    r = cli("review", "import", tmp_path / "q.txt", "--out", tmp_path / "l.jsonl", check=False)
    assert r.returncode == 2 and ".csv or a .jsonl" in r.stderr


def test_csv_cells_that_look_like_formulas_are_neutralised_and_restored(tmp_path, run_dir):
    evil = tmp_path / "evil.jsonl"
    texts = ["=HYPERLINK(\"http://x.example\",\"click\")", "-enc SQBFAFgA", "@SUM(1+1)", "'quoted", "plain alert"]
    evil.write_text("".join(json.dumps({"id": f"e{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    q = tmp_path / "q.csv"
    cli("review", "export", run_dir, "--out", q, "--n", 100, "--unlabelled", evil)
    raw = q.read_text()
    assert "'=HYPERLINK" in raw and ",'-enc SQBFAFgA," in raw and ",'@SUM" in raw and ",''quoted," in raw
    rows = _read_csv(q)
    cells = {r["id"]: r["text"] for r in rows if r["id"].startswith("e")}
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells.values())
    for r in rows:
        r["decision"] = "true_positive" if r["id"].startswith("e") else ""
    with open(q, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lab = tmp_path / "l.jsonl"
    cli("review", "import", q, "--out", lab)
    assert sorted(json.loads(x)["text"] for x in lab.read_text().splitlines()) == sorted(texts)
