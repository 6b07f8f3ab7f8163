"""The alert-triage example end to end from its config with a real llama.cpp teacher (SmolLM2-135M)."""

import json

from conftest import ROOT, cli
from test_report import rendered_images

CONFIG = ROOT / "smallworld" / "examples" / "alert_triage.toml"


def test_alert_triage_config_end_to_end_with_a_server_teacher(llama_server, tmp_path):
    rd = tmp_path / "run"
    args = ["run", CONFIG, "--set", f"teacher.url={llama_server.url}", "--set", f"teacher.cache={tmp_path / 'c.sqlite'}",
            "--out", rd]
    cli(*args)
    st = json.loads((rd / "run.json").read_text())
    assert {k: v["status"] for k, v in st["stages"].items()} == {"train": "done", "report": "done"}
    usage = st["teacher"]["usage"]
    assert usage["calls"] > 20 and usage["cache_hits"] == 0
    m = json.loads((rd / "model" / "manifest.json").read_text())
    assert m["counts"]["chosen"] == 20 and [r["asked"] for r in m["teacher"]["rounds"]] == [10, 10]
    assert m["config"]["task"]["name"] == "alert_triage"
    # every figure renders, teacher-student agreement and the teacher's cost included
    imgs = rendered_images(rd / "report" / "report.html")
    assert "fig-agreement" in [i[0] for i in imgs] and all(w > 0 for _, _, w, _ in imgs)
    md = (rd / "report" / "report.md").read_text()
    assert "Teacher and student pick the same label on" in md and f"{usage['calls']} live calls" in md

    # the same run again: nothing to do; forced: every teacher answer comes from the cache
    cli(*args)
    assert {k: v["status"] for k, v in json.loads((rd / "run.json").read_text())["stages"].items()} == \
        {"train": "skipped", "report": "skipped"}
    cli(*args, "--force")
    again = json.loads((rd / "run.json").read_text())["teacher"]["usage"]
    assert again["calls"] == 0 and again["cache_hits"] == usage["calls"]

    # the analyst queue from a run with a teacher: teacher and student probabilities side by side
    q = tmp_path / "q.jsonl"
    cli("review", "export", rd, "--out", q, "--n", 15)
    rows = [json.loads(x) for x in q.read_text().splitlines()]
    assert rows and {r["reason"] for r in rows} <= {"label_contradicted", "teacher_student_disagree", "low_confidence"}
    assert all(set(r["student_probs"]) == {"true_positive", "false_positive"} for r in rows)
    assert all(r["teacher_probs"] is not None for r in rows if r["reason"] != "low_confidence" or not r["given_label"])
