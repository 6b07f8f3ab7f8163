"""Learning curves: the distilled student's quality against the number of teacher calls, per selection strategy.

    SMALLWORLD_TEACHER_THREADS=1 .venv/bin/python bench/learning_curves.py --data ../shared/data \\
        [--tasks cmdlines,urls] [--sizes 25,25,50,100] [--strategies random,uncertainty,diversity,dedup,combined]

For each task: a 500-row labelled seed from train (the held-out source removed), unlabelled rows = the task's
`pool` (rows of the held-out source removed, so the held-out measure stays honest) and `telemetry` mixed.
Each strategy runs `train` with rounds of the given sizes (cumulative calls 25, 50, 100, 200 by default)
and records after every round the student's ROC AUC and TPR at 1e-3 FPR on dev and on the held-out source.
Two reference lines: seed-only (no teacher) and the oracle (random pool rows with their TRUE labels from
`pool_labels` — measurement only, never used by the pipeline). Writes bench/out/curves/curves.json, a
Markdown table (curves.md) and a PNG per task. Teacher answers are cached, so a rerun (or a resumed run)
costs seconds per strategy.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np

from smallworld import data as D
from smallworld.pipeline import (TrainConfig, _curve_point, _load_labelled, fit_distilled, holdout_split, onehot,
                                 stratified_sample, train)
from smallworld.tasks import load_task

HOLDOUT = {"cmdlines": ["lolbas"], "urls": ["phishtank-2020-05"]}


def mixed_unlabelled(data: Path, task: str, out: Path) -> Path:
    """pool (without the held-out sources) + telemetry, as one unlabelled file (ids, text and source only)."""
    path = out / f"{task}_unlabelled.jsonl.gz"
    if not path.exists():
        rows = []
        for name in ("pool", "telemetry"):
            f = data / task / f"{name}.jsonl.gz"
            if f.exists():
                rows += [{"id": r["id"], "text": r["text"], "source": r.get("source", name)}
                         for r in D.iter_rows(str(f)) if r.get("source") not in HOLDOUT[task]]
        D.write_jsonl(path, rows)
    return path


def oracle_curve(data: Path, task_name: str, cfg: TrainConfig, cum: list[int]) -> list[dict]:
    """The student trained on the seed plus N random pool rows with their true labels (an upper reference)."""
    task = load_task(task_name)
    labelled = _load_labelled(cfg.labelled, task, "raise")
    dev = _load_labelled(cfg.dev, task, "raise")
    labelled, heldout = holdout_split(task, labelled, dev, cfg.holdout_sources)
    dev = [r for r in dev if r.get("source") not in set(cfg.holdout_sources)]
    seed = stratified_sample(labelled, cfg.seed_size, cfg.seed)
    with gzip.open(data / task_name / "pool_labels.jsonl.gz", "rt", encoding="utf-8") as f:
        truth = {r["id"]: r["label"] for r in map(json.loads, f)}
    pool = [r for r in D.iter_rows(str(data / task_name / "pool.jsonl.gz"))
            if r.get("source") not in set(cfg.holdout_sources) and r["id"] in truth]
    order = np.random.default_rng(cfg.seed).permutation(len(pool))
    sets = {name: ([task.normalise(r["text"]) for r in rows], np.array([r["label"] == task.positive for r in rows]))
            for name, rows in (("dev", dev), ("heldout", heldout))}
    st = [task.normalise(r["text"]) for r in seed]
    Ys, ws = onehot(task, [r["label"] for r in seed]), np.ones(len(seed))
    points = []
    for n in cum:
        chosen = [pool[i] for i in order[:n]]
        Yt = onehot(task, [truth[r["id"]] for r in chosen])
        m = fit_distilled(task, cfg, st, Ys, ws, [task.normalise(r["text"]) for r in chosen], Yt, np.ones(n))
        points.append({"teacher_calls": n, "metrics": _curve_point(task, m, sets)})
    return points


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--tasks", default="cmdlines,urls")
    ap.add_argument("--sizes", default="25,25,50,100", help="teacher calls per round")
    ap.add_argument("--strategies", default="random,uncertainty,diversity,dedup,combined")
    ap.add_argument("--prompt", default="fixed", help="teacher prompt (fixed: the cheapest per call)")
    ap.add_argument("--seed-size", type=int, default=500)
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--out", default="bench/out/curves")
    a = ap.parse_args()
    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in a.sizes.split(",")]
    cum = list(np.cumsum(sizes).tolist())
    res_path = out / "curves.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else {}
    for task in a.tasks.split(","):
        unl = mixed_unlabelled(data, task, out)
        base = dict(task=task, labelled=str(data / task / "train.jsonl.gz"), dev=str(data / task / "dev.jsonl.gz"),
                    unlabelled=[str(unl)], teacher=a.teacher, seed_size=a.seed_size, holdout_sources=HOLDOUT[task],
                    teacher_eval=0, prompt=a.prompt, round_sizes=sizes, progress=True)
        r = results.setdefault(task, {"sizes": sizes, "holdout": HOLDOUT[task], "prompt": a.prompt, "strategies": {}})
        if "oracle" not in r:
            r["oracle"] = oracle_curve(data, task, TrainConfig(out=str(out / "oracle"), **base), cum)
        for s in a.strategies.split(","):
            if r["strategies"].get(s, {}).get("sizes") == sizes:
                continue
            m = train(TrainConfig(out=str(out / f"{task}_{s}"), strategy=s, **base)).manifest
            r["seed_only"] = {k: {"roc_auc": v["seed_only"]["roc_auc"], "tpr_at_1e-3": v["seed_only"]["tpr_at_fpr"]["0.001"]}
                              for k, v in m["metrics"].items()}
            u = m["teacher"]["usage"]
            r["strategies"][s] = {"sizes": sizes, "rounds": m["teacher"]["rounds"],
                                  "teacher_seconds": u.get("seconds"), "teacher_calls_live": u.get("calls"),
                                  "cache_hits": u.get("cache_hits")}
            res_path.write_text(json.dumps(results, indent=2))
        res_path.write_text(json.dumps(results, indent=2))
    (out / "curves.md").write_text(render(results) + "\n\n" + render_compact(results))
    print(render(results))
    plot(results, out)


def render(results: dict) -> str:
    lines = []
    for task, r in results.items():
        lines.append(f"\n### {task} (held out: {', '.join(r['holdout'])}; prompt {r['prompt']})\n")
        cum = list(np.cumsum(r["sizes"]))
        lines.append("| strategy | set | metric | " + " | ".join(f"{c} calls" for c in cum) + " |")
        lines.append("|---|---|---|" + "---|" * len(cum))
        for name in ("dev", "heldout"):
            for met in ("roc_auc", "tpr_at_1e-3"):
                so = r.get("seed_only", {}).get(name, {}).get(met)
                lines.append(f"| seed-only | {name} | {met} | " + " | ".join(_f(so) for _ in cum) + " |")
                for s, v in r["strategies"].items():
                    lines.append(f"| {s} | {name} | {met} | " + " | ".join(_f(p["metrics"][name][met]) for p in v["rounds"]) + " |")
                lines.append(f"| oracle (true labels) | {name} | {met} | " +
                             " | ".join(_f(p["metrics"][name][met]) for p in r["oracle"]) + " |")
        lines.append("\n" + half_budget_claim(r))
    return "\n".join(lines)


def render_compact(results: dict) -> str:
    """ROC AUC on dev and on the held-out source per strategy and number of calls, one table per task."""
    lines = []
    for task, r in results.items():
        cum = [int(c) for c in np.cumsum(r["sizes"])]
        lines.append(f"\n`{task}` (held out: {', '.join(r['holdout'])}), ROC AUC on dev | on the held-out source:\n")
        lines.append("| strategy | " + " | ".join(f"dev, {c}" for c in cum) + " | " +
                     " | ".join(f"held-out, {c}" for c in cum) + " |")
        lines.append("|---|" + "---:|" * (2 * len(cum)))
        so = r.get("seed_only", {})
        lines.append("| seed-only (no teacher) | " + " | ".join(_f(so.get("dev", {}).get("roc_auc")) for _ in cum) + " | " +
                     " | ".join(_f(so.get("heldout", {}).get("roc_auc")) for _ in cum) + " |")
        rows = [(s, v["rounds"]) for s, v in r["strategies"].items()] + [("oracle (true labels)", r["oracle"])]
        for s, pts in rows:
            lines.append(f"| {s} | " + " | ".join(_f(p["metrics"]["dev"]["roc_auc"]) for p in pts) + " | " +
                         " | ".join(_f(p["metrics"]["heldout"]["roc_auc"]) for p in pts) + " |")
        lines.append("\n" + half_budget_claim(r))
    return "\n".join(lines)


def half_budget_claim(r: dict) -> str:
    """Does any strategy reach random's final dev ROC AUC with at most half of random's calls?"""
    if "random" not in r["strategies"]:
        return ""
    rr = r["strategies"]["random"]["rounds"]
    target, calls = rr[-1]["metrics"]["dev"]["roc_auc"], rr[-1]["teacher_calls"]
    best = []
    for s, v in r["strategies"].items():
        hit = [p["teacher_calls"] for p in v["rounds"] if p["metrics"]["dev"]["roc_auc"] >= target]
        if hit:
            best.append((hit[0], s))
    best.sort()
    txt = f"random's final dev ROC AUC {target:.4f} at {calls} calls; first reached by: " + \
        ", ".join(f"{s} at {c} calls" for c, s in best)
    ok = [s for c, s in best if s != "random" and c <= calls / 2]
    return txt + (f" — **{', '.join(ok)} reach it with at most half the calls**" if ok else " — no strategy does it with half the calls")


def _f(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for task, r in results.items():
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        for i, name in enumerate(("dev", "heldout")):
            for j, met in enumerate(("roc_auc", "tpr_at_1e-3")):
                ax = axes[j][i]
                for s, v in r["strategies"].items():
                    ax.plot([p["teacher_calls"] for p in v["rounds"]], [p["metrics"][name][met] for p in v["rounds"]],
                            marker="o", label=s)
                ax.plot([p["teacher_calls"] for p in r["oracle"]], [p["metrics"][name][met] for p in r["oracle"]],
                        "k--", label="oracle (true labels)")
                so = r.get("seed_only", {}).get(name, {}).get(met)
                if so is not None:
                    ax.axhline(so, color="grey", linestyle=":", label="seed-only")
                ax.set_xscale("log")
                ticks = [p["teacher_calls"] for p in r["oracle"]]
                ax.set_xticks(ticks, [str(t) for t in ticks])
                ax.minorticks_off()
                ax.set_xlabel("teacher calls")
                ax.set_title(f"{task}: {name} {met}")
                ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"curves_{task}.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
