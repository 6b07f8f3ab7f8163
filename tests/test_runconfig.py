"""`smallworld run CONFIG` and `smallworld init`: one TOML file, validated, resumable stage by stage; `explain`."""

import json

import pytest

from conftest import ROOT, cli
from smallworld.errors import SmallworldError
from smallworld.runconfig import SECTIONS, load_config
from smallworld.pipeline import TrainConfig
from smallworld.tasks import load_task

EX = ROOT / "smallworld" / "examples"
CONFIG = EX / "alert_triage.toml"


def _stages(run_dir):
    return {k: v["status"] for k, v in json.loads((run_dir / "run.json").read_text())["stages"].items()}


def test_every_trainconfig_field_has_one_config_key():
    mapped = [f for keys in SECTIONS.values() for f in keys.values()]
    assert len(mapped) == len(set(mapped))
    assert set(mapped) == set(TrainConfig.__dataclass_fields__) - {"task", "out", "progress"}


def test_run_is_resumable_stage_by_stage(tmp_path):
    rd = tmp_path / "run"
    r = cli("run", CONFIG, "--set", "teacher.url=none", "--out", rd)
    assert "stage train: done" in r.stdout and "stage report: done" in r.stdout
    st = json.loads((rd / "run.json").read_text())
    assert _stages(rd) == {"train": "done", "report": "done"}
    assert st["inputs"][str(EX / "alerts_seed.jsonl")]["sha256"]
    assert st["parameters"]["budget"] == 20 and st["parameters"]["teacher"] is None
    assert st["parameters"]["task"]["name"] == "alert_triage"  # the task defined in the config alone
    assert (rd / "model" / "model.json").exists() and (rd / "report" / "report.html").exists()
    assert st["stages"]["train"]["outputs"]["manifest.json"] and st["stages"]["train"]["seconds"] > 0
    model_sha = json.loads((rd / "model" / "model.json").read_text())["weights_sha256"]

    cli("run", CONFIG, "--set", "teacher.url=none", "--out", rd)
    assert _stages(rd) == {"train": "skipped", "report": "skipped"}
    # a report parameter changed: only the report runs again
    cli("run", CONFIG, "--set", "teacher.url=none", "--set", "report.cpu_price_per_hour=0.5", "--out", rd)
    assert _stages(rd) == {"train": "skipped", "report": "done"}
    # an output removed: its stage runs again
    (rd / "report" / "report.md").unlink()
    cli("run", CONFIG, "--set", "teacher.url=none", "--set", "report.cpu_price_per_hour=0.5", "--out", rd)
    assert _stages(rd) == {"train": "skipped", "report": "done"} and (rd / "report" / "report.md").exists()
    # a training parameter changed: both run, and the model changes
    cli("run", CONFIG, "--set", "teacher.url=none", "--set", "train.l2=0.01", "--out", rd)
    assert _stages(rd) == {"train": "done", "report": "done"}
    assert json.loads((rd / "model" / "model.json").read_text())["weights_sha256"] != model_sha


@pytest.mark.parametrize("extra, message", [
    ("[train]\nalpah = 2\n", "unknown key 'alpah' (did you mean 'alpha'?)"),
    ("[teacher]\nbudget = \"ten\"\n", "'budget' must be int"),
    ("[tarin]\nseed = 1\n", "unknown key 'tarin' (did you mean 'train'?)"),
    ("[report]\ncolour = 1\n", "unknown key 'colour'"),
])
def test_config_mistakes_get_one_clear_line(tmp_path, extra, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'task = "cmdlines"\n[data]\nlabelled = "{EX / "cmdlines_seed.jsonl"}"\n{extra}')
    r = cli("run", cfg, "--out", tmp_path / "r", check=False)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_bad_inline_task_is_reported_with_the_task_loaders_own_checks(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[task]\nname = "t"\nlabels = ["a", "b"]\npositive = "c"\nanswers = {{ a = "yes", b = "no" }}\n'
                   f'[data]\nlabelled = "{EX / "alerts_seed.jsonl"}"\n')
    with pytest.raises(SmallworldError, match="positive label 'c' is not among"):
        load_config(cfg)
    cfg.write_text('task = "cmdlines"\n[data]\nlabelled = "nope.jsonl"\n')
    with pytest.raises(SmallworldError, match="labelled: no such file"):
        load_config(cfg)


def test_label_descriptions_become_the_rubric():
    t = load_task({"name": "t", "labels": {"bad": "an attack", "good": "expected activity"}, "positive": "bad",
                   "answers": {"bad": "yes", "good": "no"}, "rubric": "Look closely."})
    assert t.labels == ("bad", "good")
    assert t.rubric == "Look closely.\nbad: an attack\ngood: expected activity"


def test_init_writes_a_config_that_runs(tmp_path):
    # a new task: a [task] table to fill in, valid as written
    new = tmp_path / "new.toml"
    r = cli("init", "--task", "my_triage", "--out", new)
    assert "new task" in r.stdout
    text = new.read_text()
    assert "[task]" in text and 'name = "my_triage"' in text
    with pytest.raises(SmallworldError, match="labelled: no such file"):  # only the data is missing
        load_config(new)
    assert cli("init", "--task", "my_triage", "--out", new, check=False).returncode == 2  # never overwrites
    # a built-in task, pointed at data, runs
    cfg = tmp_path / "c.toml"
    cli("init", "--task", "cmdlines", "--out", cfg)
    text = cfg.read_text().replace('labelled = "seed.jsonl"', f'labelled = "{EX / "cmdlines_seed.jsonl"}"') \
        .replace('url = "embedded"', 'url = "none"').replace("# dev = ...", f'dev = "{EX / "cmdlines_dev.jsonl"}"')
    cfg.write_text(text)
    c, rep, rd = load_config(cfg)
    assert c.task == "cmdlines" and c.teacher is None and rep["enabled"] and str(rd) == "runs/cmdlines"
    cli("run", cfg, "--out", tmp_path / "run")
    assert _stages(tmp_path / "run") == {"train": "done", "report": "done"}


def test_explain_shows_the_ngrams_and_tokens_behind_a_decision(tmp_path):
    rd = tmp_path / "run"
    cli("run", CONFIG, "--set", "teacher.url=none", "--set", "report.enabled=false", "--out", rd)
    text = "EDR critical: lsass.exe memory read by rundll32.exe comsvcs.dll MiniDump on DC03"
    r = cli("explain", rd / "model", text, "--top", "5")
    assert "P(true_positive) =" in r.stdout and "toward true_positive:" in r.stdout and "against:" in r.stdout
    e = json.loads(cli("explain", rd / "model", text, "--top", "5", "--json").stdout)
    toward = [k for k, _ in e["toward"]]
    assert 0 < len(toward) <= 5 and all(v > 0 for _, v in e["toward"]) and all(v < 0 for _, v in e["against"])
    # the features are the item's own n-grams and tokens, and they add up (with the bias) to the margin
    assert all(k.startswith("token:") and k[6:].lower() in text.lower() or k.strip("'").replace("^", "")
               .replace("$", "").lower() in text.lower() for k in toward)
    full = json.loads(cli("explain", rd / "model", text, "--top", "100000", "--json").stdout)
    total = full["bias"] + sum(v for _, v in full["top_abs"])
    assert abs(total - full["margin"]) < 1e-6
    import math
    p = full["probs"][0]
    assert abs(math.log(p / (1 - p)) - full["margin"]) < 1e-4  # two classes: the margin is the logit
