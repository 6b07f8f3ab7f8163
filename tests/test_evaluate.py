"""The bootstrap interval the benches print beside every figure on a hand-written set."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT
from smallworld import data as D
from smallworld import evaluate as E
from smallworld.pipeline import onehot, stratified_sample
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task


@pytest.fixture(scope="module")
def endpoint_scores(data_dir):
    """A seed-only student's scores on both hand-written endpoint collections (500 stratified train rows)."""
    task = load_task("cmdlines")
    seed = stratified_sample(D.read_rows(data_dir / "cmdlines" / "train.jsonl.gz"), 500, 0)
    m = LinearStudent(task.labels, dict(task.features)).fit([task.normalise(r["text"]) for r in seed],
                                                            onehot(task, [r["label"] for r in seed]))
    out = {}
    for name in ("endpoint", "endpoint_b"):
        rows = D.read_rows(ROOT / "bench" / "handwritten" / f"{name}.jsonl")
        y = np.array([r["label"] == task.positive for r in rows], dtype=int)
        out[name] = (y, m.predict_proba([task.normalise(r["text"]) for r in rows])[:, task.pos_index])
    return out


def test_interval_holds_the_figure_and_is_wider_on_the_smaller_set(endpoint_scores):
    widths = {}
    for name, (y, s) in endpoint_scores.items():
        auc = E.binary_metrics(y, s)["roc_auc"]
        lo, hi = E.bootstrap_interval(y, s)
        assert lo < auc < hi, (name, lo, auc, hi)
        assert 0.02 < hi - lo < 0.25
        assert (lo, hi) == E.bootstrap_interval(y, s)  # seeded: the same figures every run
        widths[name] = hi - lo
    y = np.r_[endpoint_scores["endpoint"][0], endpoint_scores["endpoint_b"][0]]
    s = np.r_[endpoint_scores["endpoint"][1], endpoint_scores["endpoint_b"][1]]
    lo, hi = E.bootstrap_interval(y, s)
    assert hi - lo < max(widths.values())  # 461 rows pin the figure down better than either collection


def test_interval_of_another_statistic_and_the_degenerate_cases(endpoint_scores):
    y, s = endpoint_scores["endpoint"]
    tpr = E.tpr_at_fpr(y, s, 0.01)
    lo, hi = E.bootstrap_interval(y, s, stat=lambda yy, ss: E.tpr_at_fpr(yy, ss, 0.01))
    assert lo <= tpr <= hi and hi > lo  # TPR at 1% FPR on 139 background lines moves a lot
    assert E.bootstrap_interval(y, y.astype(float)) == (1.0, 1.0)  # a perfect ranking stays perfect in every resample
    with pytest.raises(ValueError, match="both classes"):
        E.bootstrap_interval(np.ones(5), np.arange(5.0))
