"""A task's own training defaults (its ``[train]`` table): used where the user sets nothing, overridden by a CLI
flag, a run config's ``[train]`` key or the Python API, checked like every other task key, and recorded as used."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, cli
from smallworld.errors import SmallworldError
from smallworld.pipeline import TrainConfig, Trainer
from smallworld.runconfig import load_config, starter_config
from smallworld.tasks import Task, load_task

EX = ROOT / "smallworld" / "examples"


def test_urls_learn_with_their_measured_defaults_and_other_tasks_with_the_general_ones(tmp_path):
    assert load_task("urls").train == {"alpha": 0.25, "pseudo_label": 10}
    assert load_task("cmdlines").train == {}
    for task, want in (("urls", (0.25, 10)), ("cmdlines", (1.0, 0)), ("emails", (1.0, 0))):
        cfg = TrainConfig(task=task, labelled="x.jsonl", out=str(tmp_path / task))  # filled in at once: the
        assert (cfg.alpha, cfg.pseudo_label) == want and isinstance(cfg.alpha, float)  # lower layers read it
        assert Trainer(cfg).cfg.alpha == want[0]
    # what the user says wins, 0 included
    cfg = Trainer(TrainConfig(task="urls", labelled="x.jsonl", out=str(tmp_path / "u"), alpha=1.0, pseudo_label=0)).cfg
    assert (cfg.alpha, cfg.pseudo_label) == (1.0, 0)


@pytest.mark.parametrize("train, message", [
    ({"alpah": 1.0}, "'alpah' is not an option a task sets"),
    ({"l2": 0.1}, "'l2' is not an option a task sets"),
    ({"alpha": -0.5}, "alpha must be a number of 0 or more"),
    ({"alpha": "low"}, "alpha must be a number"),
    ({"alpha": float("nan")}, "alpha must be a number"),
    ({"pseudo_label": 1.5}, "pseudo_label must be a whole number"),
    ({"pseudo_label": True}, "pseudo_label must be a whole number"),
])
def test_a_bad_train_table_is_refused_when_the_task_loads(train, message):
    d = {**load_task("urls").to_dict(), "train": train}
    with pytest.raises(SmallworldError, match=message):
        Task.from_dict(d)


def test_the_defaults_travel_with_the_task_and_the_run_records_what_it_used(tmp_path):
    t = load_task("urls")
    assert Task.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    # a task file's [train] table, through the CLI, with no flag: the manifest and model.json carry the values used
    text = (EX / "alert_triage.toml").read_text()
    task_toml = tmp_path / "triage.toml"
    task_part = text.split("[task]", 1)[1].split("\n[data]", 1)[0]  # the example run config's task, as a task file
    task_toml.write_text(task_part.replace("[task.", "[") + "\n[train]\nalpha = 0.5\npseudo_label = 2\n")
    out = tmp_path / "m"
    cli("train", "--task", task_toml, "--labelled", EX / "alerts_seed.jsonl", "--unlabelled", EX / "alerts_unlabelled.jsonl",
        "--dev", EX / "alerts_dev.jsonl", "--teacher", "none", "--out", out)
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["alpha"] == 0.5 and man["config"]["pseudo_label"] == 2
    assert json.loads((out / "model.json").read_text())["task"]["train"] == {"alpha": 0.5, "pseudo_label": 2}
    out2 = tmp_path / "m2"
    cli("train", "--task", task_toml, "--labelled", EX / "alerts_seed.jsonl", "--dev", EX / "alerts_dev.jsonl",
        "--teacher", "none", "--alpha", "2", "--pseudo-label", "0", "--out", out2)
    man2 = json.loads((out2 / "manifest.json").read_text())
    assert man2["config"]["alpha"] == 2.0 and man2["config"]["pseudo_label"] == 0


def test_a_run_config_leaves_them_to_the_task_or_sets_them(tmp_path):
    starter = starter_config("urls")
    assert "# alpha = 0.25" in starter and "# pseudo_label = 10" in starter
    assert "# alpha = 1.0" in starter_config("cmdlines") and "# pseudo_label = 0" in starter_config("cmdlines")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'task = "urls"\n[data]\nlabelled = "{EX / "cmdlines_seed.jsonl"}"\n')
    c = load_config(cfg)[0]
    assert (c.alpha, c.pseudo_label) == (0.25, 10)  # the task's
    cfg.write_text(f'task = "urls"\n[data]\nlabelled = "{EX / "cmdlines_seed.jsonl"}"\n[train]\nalpha = 1\npseudo_label = 0\n')
    c = load_config(cfg)[0]
    assert (c.alpha, c.pseudo_label) == (1, 0)
