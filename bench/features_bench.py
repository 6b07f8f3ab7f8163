"""Do the structural features help? The student with each normaliser (the raw text's n-grams versus the
parsed view with feature tokens), trained on train (or a 500-row seed), measured on dev and on the pool
(its true labels read for measurement only).

    .venv/bin/python bench/features_bench.py --data ../shared/data [--tasks html,emails]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld.pipeline import onehot, stratified_sample
from smallworld.student.linear import LinearStudent
from smallworld.tasks import load_task

VARIANTS = {"html": ("none", "html"), "emails": ("email", "email_view")}


def rows(data: Path, task: str, split: str) -> list[dict]:
    out = list(D.iter_rows(str(data / task / f"{split}.jsonl.gz")))
    if split == "pool":
        with gzip.open(data / task / "pool_labels.jsonl.gz", "rt", encoding="utf-8") as f:
            lab = {r["id"]: r["label"] for r in map(json.loads, f)}
        out = [dict(r, label=lab[r["id"]]) for r in out if r["id"] in lab]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--tasks", default="html,emails")
    ap.add_argument("--seed-size", type=int, default=500)
    a = ap.parse_args()
    data = Path(a.data)
    print("| task | normaliser | train rows | dev ROC AUC | dev TPR@1e-2 | pool ROC AUC | pool TPR@1e-2 |\n|---|---|---|---|---|---|---|")
    for name in a.tasks.split(","):
        base = load_task(name)
        train, dev, pool = rows(data, name, "train"), rows(data, name, "dev"), rows(data, name, "pool")
        seed = stratified_sample(train, a.seed_size, 0) if len(train) > a.seed_size else train
        for norm in VARIANTS[name]:
            task = dataclasses.replace(base, normaliser=norm)
            m = LinearStudent(task.labels, dict(task.features)).fit(
                [task.normalise(r["text"]) for r in seed], onehot(task, [r["label"] for r in seed]))
            res = []
            for ev in (dev, pool):
                y = np.array([r["label"] == task.positive for r in ev])
                s = m.predict_proba([task.normalise(r["text"]) for r in ev])[:, task.pos_index]
                b = E.binary_metrics(y, s)
                res += [b["roc_auc"], b["tpr_at_fpr"]["0.01"]]
            print(f"| {name} | {norm} | {len(seed)} | " + " | ".join(f"{x:.4f}" for x in res) + " |")


if __name__ == "__main__":
    main()
