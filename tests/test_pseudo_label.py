"""Pseudo-labelling (``train --pseudo-label``): the distilled student labels the unlabelled rows the teacher was
not asked about and learns them, on real telemetry with the real embedded teacher."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from smallworld import data as D
from smallworld.errors import SmallworldError
from smallworld.evaluate import binary_metrics
from smallworld.pipeline import TrainConfig, Trainer, stratified_sample


def test_pseudo_label_options_are_checked(tmp_path):
    for bad in ({"pseudo_label": -1}, {"pseudo_label": 1.5}, {"pseudo_weight": -0.1}, {"pseudo_temperature": 0.0},
                {"pseudo_max": -5}):
        with pytest.raises(SmallworldError, match="pseudo"):
            TrainConfig(task="urls", labelled="x.jsonl", out=str(tmp_path / "m"), **bad)


@pytest.mark.slow
def test_pseudo_labelling_carries_the_teacher_further_into_telemetry(tmp_path, data_dir):
    """500 seed rows, 150 embedded-teacher calls on URL `telemetry`, one telemetry row in five held back (as
    bench/selection_curves.py). The score needs no labels a user lacks: the student's ROC AUC against the
    teacher's own answers on 200 held-back rows. Ten rounds of pseudo-labelling on the unasked rows must raise
    it; the rows the student labelled are counted in the manifest and in model.json."""
    import json

    from smallworld.teacher import make_teacher, prompting

    d = data_dir / "urls"
    seed = tmp_path / "seed.jsonl"
    D.write_jsonl(seed, stratified_sample(list(D.iter_rows(str(d / "train.jsonl.gz"))), 500, 0))
    tel = list(D.iter_rows(str(d / "telemetry.jsonl.gz")))
    back = [r for r in tel if hashlib.sha256(r["id"].encode()).digest()[0] % 5 == 0][:200]
    pool = tmp_path / "pool.jsonl"
    D.write_jsonl(pool, [r for r in tel if hashlib.sha256(r["id"].encode()).digest()[0] % 5 != 0][:1500])
    cache = str(tmp_path / "cache.sqlite")
    runs = {}
    for n in (0, 10):
        cfg = TrainConfig(task="urls", labelled=str(seed), unlabelled=[str(pool)], out=str(tmp_path / f"m{n}"),
                          prompt="fixed", budget=150, calibration=0, teacher_eval=0, cache=cache, pseudo_label=n,
                          progress=False)
        tr = Trainer(cfg)
        runs[n] = (tr, tr.run())
    tr0, res0 = runs[0]
    tr10, res10 = runs[10]
    assert res0.manifest["counts"]["pseudo_labelled"] == 0
    assert res10.manifest["counts"]["pseudo_labelled"] == 1500 - 150 - res10.manifest["counts"]["inherited"]
    meta = json.loads((tmp_path / "m10" / "model.json").read_text())
    assert meta["trained_on"]["pseudo_labelled_rows"] == res10.manifest["counts"]["pseudo_labelled"]
    assert tr10.asked == tr0.asked  # the same teacher calls: only the student's own labels differ

    teacher = make_teacher("embedded", cache_path=cache)
    try:
        demos = prompting.Demonstrations(tr0.task, tr0.seed_rows, k=3, mode="fixed", rubric=True)
        P = prompting.ask_rows(teacher, tr0.task, demos, back, "teacher: held-back telemetry", False)
    finally:
        teacher.close()
    ok = ~np.isnan(P).any(axis=1)
    y = P[ok, tr0.task.pos_index] >= 0.5
    assert 20 <= y.sum() <= len(y) - 20, y.sum()
    items = [tr0.task.item(r) for r, k in zip(back, ok) if k]
    auc = {n: binary_metrics(y, runs[n][1].model.scores(items))["roc_auc"] for n in runs}  # the saved models
    assert auc[10] >= auc[0] + 0.005, auc
