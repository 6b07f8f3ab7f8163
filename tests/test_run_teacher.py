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


def test_cmdlines_config_run_with_rounds_reports_learning_curves(llama_server, tmp_path, data_dir):
    """A config-driven run on `cmdlines` (real data, a real teacher, two rounds) produces the report with its
    learning curves from the per-round metrics the pipeline records."""
    from smallworld import data as D

    seed = tmp_path / "seed.jsonl"
    D.write_jsonl(seed, [r for _, r in zip(range(300), D.iter_rows(str(data_dir / "cmdlines" / "train.jsonl.gz")))])
    cfg = tmp_path / "cmdlines.toml"
    cfg.write_text(f'task = "cmdlines"\nout = "{tmp_path / "run"}"\n[data]\nlabelled = "{seed}"\n'
                   f'unlabelled = ["{data_dir / "cmdlines" / "telemetry.jsonl.gz"}"]\n'
                   f'dev = "{data_dir / "cmdlines" / "dev.jsonl.gz"}"\nholdout_sources = ["lolbas"]\n'
                   f'[teacher]\nurl = "{llama_server.url}"\ncache = "{tmp_path / "c.sqlite"}"\nround_sizes = [6, 6]\n'
                   'calibration = 12\nteacher_eval = 0\nprompt = "fixed"\nshots = 2\n')
    cli("run", cfg)
    m = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    rounds = m["teacher"]["rounds"]
    assert [r["teacher_calls"] for r in rounds] == [6, 12]
    assert all(0.5 < r["metrics"]["dev"]["roc_auc"] <= 1 and "heldout" in r["metrics"] for r in rounds)
    imgs = rendered_images(tmp_path / "run" / "report" / "report.html")
    assert "fig-learning" in [i[0] for i in imgs] and all(ok and w > 100 for _, ok, w, _ in imgs)


def test_train_with_a_prompt_ensemble_weights_rows_by_agreement(llama_server, tmp_path, data_dir):
    """`train --prompt fixed+similar --agreement-weight`: every telemetry row is asked once per member, its
    teacher label records the members' agreement, and rows the members disagree on weigh less."""
    from smallworld import data as D

    seed = tmp_path / "seed.jsonl"
    D.write_jsonl(seed, [r for _, r in zip(range(300), D.iter_rows(str(data_dir / "cmdlines" / "train.jsonl.gz")))])
    base = ["train", "--task", "cmdlines", "--labelled", seed, "--unlabelled",
            data_dir / "cmdlines" / "telemetry.jsonl.gz", "--dev", data_dir / "cmdlines" / "dev.jsonl.gz",
            "--teacher", llama_server.url, "--cache", tmp_path / "c.sqlite", "--budget", "10", "--calibration", "8",
            "--teacher-eval", "0", "--shots", "2", "--prompt", "fixed+similar", "--no-rubric"]
    cli(*base, "--out", tmp_path / "a", "--agreement-weight")
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["config"]["prompt"] == "fixed+similar" and m["config"]["agreement_weight"] is True
    assert m["config"]["rubric"] is False
    assert m["teacher"]["usage"]["calls"] == 2 * (10 + 8)
    rows = [json.loads(x) for x in (tmp_path / "a" / "teacher_labels.jsonl").read_text().splitlines()]
    assert rows and {r["agreement"] for r in rows} <= {0.5, 1.0}
    cli(*base, "--out", tmp_path / "b")  # same answers from the cache, every row at full weight
    m2 = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m2["teacher"]["usage"]["calls"] == 0
    if any(r["agreement"] < 1 for r in rows):
        wa = (tmp_path / "a" / "weights.bin").read_bytes()
        assert wa != (tmp_path / "b" / "weights.bin").read_bytes()
