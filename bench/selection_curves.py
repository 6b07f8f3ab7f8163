"""Selection measured where the student is judged: teacher calls on `telemetry`, scored without labels the user
lacks.

    .venv/bin/python bench/selection_curves.py --task urls --data ../shared/data \
        [--budgets 250,500,750,1000,1500] [--strategies random,uncertainty,cluster,...] [--seeds 0,1,2] \
        [--rounds 1] [--pseudo-label 0] [--alpha 1] [--out docs/figures/selection_urls.json] [--plot docs/figures/selection_urls.png]

Per task: a 500-row stratified seed of `train` (sample seed 0, fixed so the teacher's prompts, and so its
cached answers, are shared by every run), the task's default prompt, and `telemetry` as the unlabelled pool.
One row in five of telemetry (by a hash of its id) is held back from selection: the student's ROC AUC
against the teacher's own answers on those rows ("agreement", a score any user can compute) is reported beside
the ROC AUC on the hand-written set (`bench/handwritten/urls.jsonl`; command lines: `cmdlines.jsonl` and
`endpoint.jsonl`), which no model here trained, tuned or generated on. Each (strategy, budget, selection
seed) is one :class:`smallworld.pipeline.Trainer` run (selection -> the embedded teacher, through its cache ->
the distilled student), so the first run pays for the teacher's answers and the others reuse them. The table
gives the mean over selection seeds and a 95% interval (t, seeds - 1 degrees of freedom).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld import evaluate as E
from smallworld.pipeline import TrainConfig, Trainer, stratified_sample
from smallworld.tasks import load_task

HERE = Path(__file__).parent
HANDWRITTEN = {"urls": ["urls.jsonl"], "cmdlines": ["cmdlines.jsonl", "endpoint.jsonl"], "emails": ["emails.jsonl"]}
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def held_back(row_id: str) -> bool:
    return hashlib.sha256(row_id.encode()).digest()[0] % 5 == 0


def prepare(task_name: str, data: str, seed_size: int, holdback: bool, work: Path) -> dict:
    """The seed file, the selection pool file, the held-back telemetry and the hand-written sets."""
    folder = Path(data) / task_name
    train = list(D.iter_rows(str(folder / "train.jsonl.gz")))
    seed = stratified_sample(train, seed_size, 0)
    D.write_jsonl(work / "seed.jsonl", seed)
    tel = list(D.iter_rows(str(folder / "telemetry.jsonl.gz")))
    back = [r for r in tel if holdback and held_back(r["id"])]
    pool = [r for r in tel if not (holdback and held_back(r["id"]))]
    D.write_jsonl(work / "pool.jsonl", pool)
    hand = {name: list(D.iter_rows(str(HERE / "handwritten" / name))) for name in HANDWRITTEN.get(task_name, [])}
    return {"seed": str(work / "seed.jsonl"), "pool": str(work / "pool.jsonl"), "n_pool": len(pool),
            "held_back": back, "handwritten": hand}


def run_one(task_name: str, sets: dict, strategy: str, budget: int, sel_seed: int, rounds: int, cache: str | None,
            work: Path, prompt: str | None = None, pseudo: int | None = None, alpha: float | None = None) -> dict:
    cfg = TrainConfig(task=task_name, labelled=sets["seed"], unlabelled=[sets["pool"]], prompt=prompt,
                      out=str(work / f"run-{strategy}-{budget}-{sel_seed}"), budget=budget, strategy=strategy,
                      rounds=rounds, seed=sel_seed, teacher_eval=0, progress=False, cache=cache, pseudo_label=pseudo,
                      alpha=alpha)
    t0 = time.perf_counter()
    tr = Trainer(cfg)
    tr.check_inputs()
    tr.load()
    tr.fit_seed()
    tr.teach()
    tr.pseudo_label()
    task = tr.task
    out = {"strategy": strategy, "budget": budget, "seed": sel_seed, "rounds": rounds,
           "asked": len(tr.asked), "seconds": round(time.perf_counter() - t0, 1)}
    for name, rows in sets["handwritten"].items():
        y = np.array([r["label"] == task.positive for r in rows])
        for who, model in (("distilled", tr.distilled), ("seed_only", tr.seed_only)):
            p = model.predict_proba([task.view(r) for r in rows])[:, task.pos_index]
            out[f"{who}:{name}"] = round(E.binary_metrics(y, p)["roc_auc"], 4)
    if sets["held_back"]:
        rows = sets["held_back"]
        teacher_p = teacher_answers(tr, rows)
        ok = ~np.isnan(teacher_p)
        y = teacher_p[ok] >= 0.5
        for who, model in (("distilled", tr.distilled), ("seed_only", tr.seed_only)):
            p = model.predict_proba([task.view(r) for r, k in zip(rows, ok) if k])[:, task.pos_index]
            out[f"{who}:agreement"] = round(E.binary_metrics(y, p)["roc_auc"], 4)
    return out


_ASKED: dict = {}


def teacher_answers(tr: Trainer, rows: list[dict], name: str = "held-back telemetry") -> np.ndarray:
    """The teacher's calibrated P(positive) on ``rows`` (asked once per set, through the cache)."""
    if name not in _ASKED:
        from smallworld.teacher import make_teacher, prompting

        cfg, task = tr.cfg, tr.task
        teacher = make_teacher(cfg.teacher, cache_path=cfg.cache)
        demos = prompting.Demonstrations(task, tr.seed_rows, k=cfg.shots, mode=cfg.prompt, rubric=cfg.rubric)
        try:
            P = prompting.ask_rows(teacher, task, demos, rows, f"teacher: {name}", True)
        finally:
            teacher.close()
        _ASKED[name] = tr.cal.transform(P)[:, task.pos_index]
    return _ASKED[name]


def teacher_reference(task_name: str, sets: dict, cache: str | None, work: Path, prompt: str | None) -> dict:
    """The (calibrated) teacher itself on each hand-written set: what the students are distilled from."""
    cfg = TrainConfig(task=task_name, labelled=sets["seed"], unlabelled=[sets["pool"]], prompt=prompt, budget=0,
                      teacher_eval=0, progress=False, cache=cache, out=str(work / "teacher-ref"))
    tr = Trainer(cfg)
    tr.load()
    tr.fit_seed()
    tr.teach()
    out = {}
    for name, rows in sets["handwritten"].items():
        p = teacher_answers(tr, rows, name)
        ok = ~np.isnan(p)
        y = np.array([r["label"] == tr.task.positive for r in rows])[ok]
        out[f"teacher:{name}"] = round(E.binary_metrics(y, p[ok])["roc_auc"], 4)
    return out


def summarise(results: list[dict], keys: list[str]) -> list[dict]:
    table = []
    for (strategy, budget) in sorted({(r["strategy"], r["budget"]) for r in results}, key=lambda x: (x[0], x[1])):
        rs = [r for r in results if r["strategy"] == strategy and r["budget"] == budget]
        row = {"strategy": strategy, "budget": budget, "runs": len(rs)}
        for k in keys:
            v = np.array([r[k] for r in rs if k in r], float)
            if len(v):
                half = T95.get(len(v) - 1, 2.0) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
                row[k] = (round(float(v.mean()), 4), round(float(half), 4))
        table.append(row)
    return table


def markdown(table: list[dict], keys: list[str]) -> str:
    head = "| strategy | calls | " + " | ".join(keys) + " |\n|---|---:|" + "---:|" * len(keys)
    lines = [head]
    for row in table:
        cells = [f"{row[k][0]:.4f} ± {row[k][1]:.4f}" if k in row else "" for k in keys]
        lines.append(f"| {row['strategy']} | {row['budget']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(table: list[dict], key: str, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for s in sorted({r["strategy"] for r in table}):
        rs = sorted((r for r in table if r["strategy"] == s and key in r), key=lambda r: r["budget"])
        b = [r["budget"] for r in rs]
        m = np.array([r[key][0] for r in rs])
        h = np.nan_to_num(np.array([r[key][1] for r in rs]))
        ax.plot(b, m, marker="o", label=s)
        ax.fill_between(b, m - h, m + h, alpha=0.15)
    ax.set_xlabel("teacher calls on telemetry")
    ax.set_ylabel(f"ROC AUC ({key})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="urls", help="a built-in task or a task TOML file (its name picks the data "
                    "folder and the hand-written sets)")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--budgets", default="250,500,750,1000,1500")
    ap.add_argument("--strategies", default="random,uncertainty,cluster,density,mixed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pseudo-label", type=int, default=None, help="rounds of pseudo-labelling after the last round "
                    "(TrainConfig.pseudo_label; default: the task's); the strategy's label gets +plN unless 0")
    ap.add_argument("--alpha", type=float, default=None, help="weight of the seed's rows (TrainConfig.alpha; default: "
                    "the task's); the strategy's label gets +aX unless 1")
    ap.add_argument("--seed-size", type=int, default=500)
    ap.add_argument("--prompt", default=None, help="the teacher's prompt (default: the task's)")
    ap.add_argument("--cache", default=None, help="teacher cache (default: the user cache)")
    ap.add_argument("--out", default=None, help="JSON file for every run and the summary")
    ap.add_argument("--plot", default=None, help="PNG of the curves (key: the first hand-written set)")
    a = ap.parse_args()
    task = load_task(a.task)
    eff = TrainConfig(task=a.task, labelled="", out="", alpha=a.alpha, pseudo_label=a.pseudo_label)  # values used
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = prepare(task.name, a.data, a.seed_size, True, work)
        budgets = sorted({min(int(b), sets["n_pool"]) for b in a.budgets.split(",")})
        results = []
        prev = json.loads(Path(a.out).read_text())["runs"] if a.out and os.path.exists(a.out) else []
        done = {(r["strategy"], r["budget"], r["seed"], r["rounds"]) for r in prev}
        results += prev
        # the largest random run first: it pays for most of the teacher's answers
        plan = [(s, b, sd) for s in a.strategies.split(",") for b in budgets for sd in map(int, a.seeds.split(","))]
        plan.sort(key=lambda x: (x[0] != "random", -x[1] if x[0] == "random" else 0))
        for s, b, sd in plan:
            strategy, rounds = (s.split("@")[0], int(s.split("@")[1])) if "@" in s else (s, a.rounds)
            label = (s if "@" in s or a.rounds == 1 else f"{s}@{a.rounds}") + \
                (f"+pl{eff.pseudo_label}" if eff.pseudo_label else "") + (f"+a{eff.alpha:g}" if eff.alpha != 1.0 else "")
            if (label, b, sd, rounds) in done:
                continue
            r = run_one(a.task, sets, strategy, b, sd, rounds, a.cache, work, a.prompt, a.pseudo_label, a.alpha)
            r["strategy"] = label
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
            if a.out:
                Path(a.out).write_text(json.dumps({"task": a.task, "runs": results}, indent=1))
        keys = sorted({k for r in results for k in r if ":" in k}, key=lambda k: (not k.startswith("distilled"), k))
        table = summarise(results, keys)
        ref = teacher_reference(a.task, sets, a.cache, work, a.prompt)
        print(markdown(table, keys))
        print("\nthe teacher itself: " + ", ".join(f"{k} {v:.4f}" for k, v in ref.items()))
        if a.out:
            Path(a.out).write_text(json.dumps({"task": a.task, "runs": results, "summary": table, "teacher": ref},
                                              indent=1))
        if a.plot:
            key = next(k for k in keys if k.startswith("distilled:"))
            plot(table, key, a.plot, f"{a.task}: selection on telemetry")


if __name__ == "__main__":
    main()
