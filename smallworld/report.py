"""``smallworld report RUN_DIR``: a self-contained HTML report and a Markdown summary of a training run.

Works on any run folder: a ``smallworld run`` folder (``run.json`` + ``model/``) or a ``smallworld train``
output directory (``manifest.json``). Per-row scores are recomputed by loading the saved models and scoring
the dev and held-out rows named in the manifest's configuration, so nothing beyond the run folder and its
input files is needed. Figures are PNGs (matplotlib, Agg) embedded as base64 in ``report.html`` and written
beside ``report.md`` under ``figures/``. Every text from the data is escaped: items are attacker-written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import numpy as np

from . import data as D
from . import evaluate as E
from .errors import SmallworldError
from .pipeline import holdout_split
from .student.model import Model
from .tasks import Task

MAX_EXAMPLES = 15


def resolve_run(path: str | Path) -> Path:
    """The model directory (with manifest.json) of a run folder or a train output directory."""
    p = Path(path)
    for d in (p / "model", p):
        if (d / "manifest.json").is_file() and (d / "model.json").is_file():
            return d
    raise SmallworldError(f"{p}: not a run folder (no manifest.json and model.json here or in {p / 'model'})")


def load_manifest(model_dir: Path) -> dict:
    try:
        m = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SmallworldError(f"{model_dir}/manifest.json: not valid JSON: {e}") from None
    if not isinstance(m, dict) or not isinstance(m.get("config"), dict):
        raise SmallworldError(f"{model_dir}/manifest.json: no 'config' (not written by smallworld train?)")
    return m


def _labelled(path: str, task: Task, notes: list[str]) -> list[dict]:
    if not path or not Path(path).exists():
        notes.append(f"{path}: not found; its rows are left out of the report")
        return []
    rows = [r for r in D.read_rows(path, on_error="skip") if "label" in r]
    D.check_labels(rows, task.labels, path)
    return rows


def eval_sets(manifest: dict, task: Task, notes: list[str]) -> dict[str, list[dict]]:
    """The dev and held-out rows of the run, rebuilt from the manifest's configuration as train built them."""
    cfg = manifest["config"]
    dev = _labelled(cfg.get("dev"), task, notes) if cfg.get("dev") else []
    out = {"dev": dev}
    hs = cfg.get("holdout_sources") or []
    if hs:
        lab = cfg.get("labelled")
        labelled = [r for p in (lab if isinstance(lab, list) else [lab]) for r in _labelled(p, task, notes)]
        try:
            _, heldout = holdout_split(task, labelled, dev, hs)
        except SmallworldError as e:
            notes.append(f"held-out rows not rebuilt: {e}")
            heldout = []
        out = {"dev": [r for r in dev if r.get("source") not in set(hs)], "heldout": heldout}
    return {k: v for k, v in out.items() if v}


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


class Scored:
    """One evaluation set scored by both students: y (1 = positive), P(positive), sources."""

    def __init__(self, name: str, rows: list[dict], task: Task, models: dict[str, Model]):
        self.name = name
        self.rows = rows
        self.y = np.array([r["label"] == task.positive for r in rows], dtype=int)
        self.src = [str(r.get("source") or "(none)") for r in rows]
        self.s = {k: m.scores([r["text"] for r in rows]) for k, m in models.items()}

    @property
    def both(self) -> bool:
        return 0 < self.y.sum() < len(self.y)


# -- figures -------------------------------------------------------------------------------------------------

def fig_roc(sets: list[Scored]):
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.2), squeeze=False)
    for ax, st in zip(axes[0], sets):
        n_neg = int((st.y == 0).sum())
        lo = min(1e-4, 0.5 / max(n_neg, 1))
        for k, s in st.s.items():
            fpr, tpr, _ = roc_curve(st.y, s)
            ax.step(np.maximum(fpr, lo), tpr, where="post", label=f"{k} (AUC {E.binary_metrics(st.y, s)['roc_auc']:.3f})")
        ax.set_xscale("log")
        ax.set_xlim(lo, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false-positive rate (log)")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"ROC: {st.name} (n {len(st.y)}, {n_neg} negatives)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right", fontsize=8)
    return fig


def fig_pr(sets: list[Scored]):
    from sklearn.metrics import precision_recall_curve

    plt = _plt()
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.2), squeeze=False)
    for ax, st in zip(axes[0], sets):
        for k, s in st.s.items():
            prec, rec, _ = precision_recall_curve(st.y, s)
            ax.step(rec, prec, where="post", label=f"{k} (AP {E.binary_metrics(st.y, s)['pr_auc']:.3f})")
        ax.axhline(st.y.mean(), color="grey", ls=":", lw=1, label=f"base rate {st.y.mean():.2f}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"Precision-recall: {st.name}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    return fig


def fig_calibration(sets: list[Scored]):
    from sklearn.calibration import calibration_curve

    plt = _plt()
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.2), squeeze=False)
    for ax, st in zip(axes[0], sets):
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect")
        for k, s in st.s.items():
            frac, mean = calibration_curve(st.y, s, n_bins=10, strategy="uniform")
            ax.plot(mean, frac, marker="o", label=f"{k} (ECE {E.ece(st.y, s):.3f})")
        ax.set_xlabel("predicted P(positive)")
        ax.set_ylabel("observed fraction positive")
        ax.set_title(f"Calibration: {st.name}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def fig_histograms(sets: list[Scored], task: Task, model: str = "distilled"):
    plt = _plt()
    by: dict[str, tuple[list, list]] = {}
    for st in sets:
        for y, s, src in zip(st.y, st.s[model], st.src):
            by.setdefault(src, ([], []))[int(y)].append(s)
    names = sorted(by, key=lambda k: -sum(map(len, by[k])))[:12]
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        neg, pos = by[name]
        ax.hist([neg, pos], bins=bins, stacked=True, label=[f"not {task.positive}", task.positive],
                color=["tab:blue", "tab:red"])
        ax.set_title(f"{name} (n {len(neg) + len(pos)})", fontsize=9)
        ax.set_xlabel(f"P({task.positive})", fontsize=8)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"Score histograms per source ({model} student, dev and held-out rows)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_confusion(sets: list[Scored], task: Task, threshold: float):
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8), squeeze=False)
    names = [f"not {task.positive}", task.positive] if len(task.labels) > 2 else \
        [next(lab for lab in task.labels if lab != task.positive), task.positive]
    for ax, st in zip(axes[0], sets):
        cm = confusion_matrix(st.y, (st.s["distilled"] >= threshold).astype(int), labels=[0, 1])
        ax.imshow(cm, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=12)
        ax.set_xticks([0, 1], names, fontsize=8)
        ax.set_yticks([0, 1], names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("given label")
        ax.set_title(f"{st.name} at threshold {threshold:.3f}", fontsize=9)
    return fig


def learning_points(manifest: dict) -> list[dict]:
    """(teacher_calls, set, metric values) from the rounds that carry metrics; [] when none do."""
    pts = []
    for r in (manifest.get("teacher") or {}).get("rounds") or []:
        if not isinstance(r, dict) or not isinstance(r.get("metrics"), dict) or r.get("teacher_calls") is None:
            continue
        for name, m in r["metrics"].items():
            if isinstance(m, dict):
                pts.append({"round": r.get("round"), "teacher_calls": r["teacher_calls"], "set": name,
                            "roc_auc": m.get("roc_auc"), "tpr_at_1e-3": m.get("tpr_at_1e-3")})
    return pts


def fig_learning(pts: list[dict]):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("roc_auc", "tpr_at_1e-3")):
        for name in sorted({p["set"] for p in pts}):
            xs = [(p["teacher_calls"], p[key]) for p in pts if p["set"] == name and p[key] is not None]
            if xs:
                ax.plot(*zip(*sorted(xs)), marker="o", label=name)
        ax.set_xlabel("teacher calls (cumulative)")
        ax.set_ylabel(key)
        ax.set_title(f"Learning curve: {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def fig_agreement(t: np.ndarray, s: np.ndarray, task: Task):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.scatter(t, s, s=14, alpha=0.6)
    ax.set_xlabel(f"teacher P({task.positive})")
    ax.set_ylabel(f"student P({task.positive})")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Teacher vs student on {len(t)} teacher-labelled rows", fontsize=9)
    ax.grid(alpha=0.3)
    return fig


# -- numbers -------------------------------------------------------------------------------------------------

def student_cost(scorer: Model, texts: list[str], cpu_price_per_hour: float, min_items: int = 50_000) -> dict:
    """Seconds (one core) and $ per million events for the student, measured by scoring these texts."""
    texts = texts or ["x"]
    batch = (texts * (min_items // len(texts) + 1))[:min_items]
    scorer.scores(batch[:100])  # warm-up (kernels compiled)
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        scorer.scores(batch)
        best = min(best, time.process_time() - t0)
    per_m = best / len(batch) * 1e6
    return {"items_timed": len(batch), "seconds_per_million": per_m,
            "usd_per_million": per_m / 3600 * cpu_price_per_hour, "cpu_price_per_hour": cpu_price_per_hour}


def teacher_cost(usage: dict) -> dict | None:
    calls = usage.get("calls") or 0
    if not calls:
        return None
    priced = bool(usage.get("price_prompt_per_1k") or usage.get("price_completion_per_1k"))
    return {"calls": calls, "cache_hits": usage.get("cache_hits", 0), "seconds": usage.get("seconds", 0.0),
            "seconds_per_million": usage.get("seconds", 0.0) / calls * 1e6,
            "usd_per_million": usage.get("cost", 0.0) / calls * 1e6 if priced else None}


def agreement(model_dir: Path, manifest: dict, task: Task, scorer: Model) -> dict | None:
    p = model_dir / "teacher_labels.jsonl"
    if not p.is_file():
        return None
    key = "raw" if manifest["config"].get("targets", "raw") == "raw" else "probs"
    rows = prob_rows(p, key, len(task.labels))
    if not rows:
        return None
    T = np.array([r[key] for r in rows], dtype=float)
    S = scorer.predict_proba([r["text"] for r in rows])
    t, s = T[:, task.pos_index], S[:, task.pos_index]
    agree = T.argmax(1) == S.argmax(1)
    order = np.argsort(-np.abs(t - s))
    worst = [{"id": rows[i]["id"], "text": rows[i]["text"], "teacher": float(t[i]), "student": float(s[i])}
             for i in order[:MAX_EXAMPLES] if not agree[i]]
    return {"n": len(rows), "which": key, "agreement": float(agree.mean()), "mean_abs_diff": float(np.abs(t - s).mean()),
            "t": t, "s": s, "disagree": worst}


def prob_rows(path: Path, key: str, k: int) -> list[dict]:
    """Rows of a run's JSONL output (teacher_labels.jsonl) that carry text and a list of k probabilities under
    key; anything else (a hand-edited or truncated line) is passed over."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and isinstance(r.get(key), list) and len(r[key]) == k and isinstance(r.get("text"), str):
            out.append(r)
    return out


def disagreement_rows(model_dir: Path) -> list[dict]:
    p = model_dir / "disagreements.jsonl"
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and isinstance(r.get("text"), str):
            out.append(r)
    return out


# -- the report ----------------------------------------------------------------------------------------------

def _f(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _money(x) -> str:
    return "not priced" if x is None else (f"${x:,.2f}" if x >= 1 else f"${x:.3g}")


def build(run_dir: str | Path, cpu_price_per_hour: float = 0.05) -> dict:
    """Everything the report shows: figures (PNG bytes), tables and notes."""
    model_dir = resolve_run(run_dir)
    manifest = load_manifest(model_dir)
    notes: list[str] = []
    scorer = Model(model_dir)
    task = scorer.task
    if task is None:
        raise SmallworldError(f"{model_dir}/model.json: no task definition; cannot report")
    models = {"distilled": scorer}
    if (model_dir / "seed_only" / "model.json").is_file():
        models["seed_only"] = Model(model_dir / "seed_only")
    sets = [Scored(n, rows, task, models) for n, rows in eval_sets(manifest, task, notes).items()]
    sets_ok = [s for s in sets if s.both]
    for s in sets:
        if not s.both:
            notes.append(f"{s.name}: only one class among its {len(s.y)} rows; no curves")
    thr = scorer.threshold("best_guess")
    figs: dict[str, tuple[str, bytes]] = {}
    if sets_ok:
        figs["roc"] = ("ROC curves (log false-positive rate)", _png(fig_roc(sets_ok)))
        figs["pr"] = ("Precision-recall curves", _png(fig_pr(sets_ok)))
        figs["calibration"] = ("Calibration", _png(fig_calibration(sets_ok)))
    if sets:
        figs["histograms"] = ("Score histograms per source", _png(fig_histograms(sets, task)))
        figs["confusion"] = (f"Confusion matrix at the best-guess threshold ({thr:.3f})",
                             _png(fig_confusion(sets, task, thr)))
    else:
        notes.append("no dev or held-out rows in this run's configuration: no curves")
    pts = learning_points(manifest)
    if pts:
        figs["learning"] = ("Learning curves (metrics after each round of teacher labels)", _png(fig_learning(pts)))
    else:
        notes.append("learning curves: the manifest's rounds carry no per-round metrics (teacher_calls, metrics)")
    agr = agreement(model_dir, manifest, task, scorer)
    if agr:
        figs["agreement"] = ("Teacher–student agreement", _png(fig_agreement(agr["t"], agr["s"], task)))
    texts = [r["text"] for s in sets for r in s.rows] or [r["text"] for r in (agr or {}).get("disagree", [])]
    usage = (manifest.get("teacher") or {}).get("usage") or {}
    cost = {"teacher": teacher_cost(usage), "student": student_cost(scorer, texts, cpu_price_per_hour)}
    metrics = {s.name: {k: E.binary_metrics(s.y, v) for k, v in s.s.items()} for s in sets}
    return {"model_dir": str(model_dir), "manifest": manifest, "task": task, "sets": sets, "figs": figs, "notes": notes,
            "threshold": thr, "learning": pts, "agreement": agr, "cost": cost, "metrics": metrics,
            "disagreements": disagreement_rows(model_dir)}


def _metric_rows(r: dict) -> list[list[str]]:
    rows = []
    for name, m in (r["manifest"].get("metrics") or {}).items():
        for who in ("teacher", "seed_only", "distilled"):
            x = m.get(who)
            if isinstance(x, dict):
                tf = x.get("tpr_at_fpr") or {}
                rows.append([name, who, str(x.get("n")), _f(x.get("roc_auc")), _f(x.get("pr_auc")),
                             _f(tf.get("0.001")), _f(tf.get("0.01")), _f(x.get("ece"))])
    return rows


METRIC_HEAD = ["set", "model", "n", "ROC AUC", "PR AUC", "TPR@1e-3", "TPR@1e-2", "ECE"]
COST_HEAD = ["", "calls timed", "seconds / million events", "$ / million events"]
DIS_HEAD = ["id", "given label", "teacher says", "teacher probs", "student (cross-validated) probs", "text"]
AGR_HEAD = ["id", "teacher P", "student P", "text"]


def _cost_rows(r: dict) -> list[list[str]]:
    t, s = r["cost"]["teacher"], r["cost"]["student"]
    rows = []
    if t:
        rows.append(["teacher", f"{t['calls']} live calls ({t['cache_hits']} cache hits)",
                     f"{t['seconds_per_million']:,.0f}", _money(t["usd_per_million"])])
    else:
        rows.append(["teacher", "0 live calls (all cached, or no teacher)", "–", "–"])
    rows.append(["student", f"{s['items_timed']:,} items, one core",
                 f"{s['seconds_per_million']:,.2f}", _money(s["usd_per_million"])])
    if t and s["seconds_per_million"] > 0:
        rows.append(["teacher / student", "", f"{t['seconds_per_million'] / s['seconds_per_million']:,.0f}×", ""])
    return rows


def _dis_rows(r: dict) -> list[list[str]]:
    labels = r["task"].labels
    fmt = lambda p: ", ".join(f"{lab} {float(v):.2f}" for lab, v in zip(labels, p)) if isinstance(p, list) else "–"
    return [[str(d.get("id")), str(d.get("label")), str(d.get("teacher")), fmt(d.get("probs")),
             fmt(d.get("student_cv_probs")), _clip(d["text"])] for d in r["disagreements"][:MAX_EXAMPLES]]


def _agr_rows(r: dict) -> list[list[str]]:
    a = r["agreement"]
    return [[str(d["id"]), f"{d['teacher']:.3f}", f"{d['student']:.3f}", _clip(d["text"])] for d in a["disagree"]] if a else []


def _clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows) + "</tbody></table>")


def _md_cell(c: str) -> str:
    return c.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").replace("`", "\\`") \
        .replace("<", "&lt;").replace(">", "&gt;")


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(map(_md_cell, head)) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows])


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f3f3f3}td{max-width:520px;overflow-wrap:anywhere}img{max-width:100%}
.note{color:#666;font-size:13px}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.4em}"""


def render(r: dict) -> tuple[str, str]:
    """(HTML, Markdown)."""
    m, task, e = r["manifest"], r["task"], html.escape
    usage = (m.get("teacher") or {}).get("usage") or {}
    head = (f"task {task.name} ({', '.join(task.labels)}; positive {task.positive}); teacher "
            f"{(m.get('teacher') or {}).get('spec') or 'none'}; {usage.get('calls', 0)} live teacher calls, "
            f"{usage.get('cache_hits', 0)} cache hits; counts {json.dumps(m.get('counts', {}))}")
    summary = []
    for name, mm in r["metrics"].items():
        d = mm.get("distilled", {})
        summary.append(f"{name}: distilled ROC AUC {_f(d.get('roc_auc'))}, TPR@1e-3 {_f((d.get('tpr_at_fpr') or {}).get('0.001'))}"
                       f" (n {d.get('n')})")
    a = r["agreement"]
    agr_line = (f"Teacher and student pick the same label on {a['agreement']:.1%} of {a['n']} teacher-labelled rows "
                f"(teacher's {a['which']} probabilities; mean |ΔP| {a['mean_abs_diff']:.3f}).") if a else \
        "No teacher-labelled rows (teacher_labels.jsonl absent or empty)."
    lp = r["learning"]
    learn_rows = [[str(p["round"]), str(p["teacher_calls"]), p["set"], _f(p["roc_auc"]), _f(p["tpr_at_1e-3"])] for p in lp]
    learn_head = ["round", "teacher calls", "set", "ROC AUC", "TPR@1e-3"]
    cost_note = (f"Teacher: wall seconds and cost of live calls from the manifest's usage ledger, scaled to a million "
                 f"events. Student: one core's CPU time scoring these rows, priced at "
                 f"${r['cost']['student']['cpu_price_per_hour']}/core-hour.")

    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
             f"<title>smallworld report: {e(task.name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>smallworld report: {e(task.name)}</h1><p class='note'>{e(r['model_dir'])} · {e(head)}</p>",
             "<h2>Summary</h2><ul>" + "".join(f"<li>{e(s)}</li>" for s in summary) + f"<li>{e(agr_line)}</li></ul>",
             "<h2>Metrics (from the manifest)</h2>" + _html_table(METRIC_HEAD, _metric_rows(r))]
    for key, (title, png) in r["figs"].items():
        parts.append(f"<figure id='fig-{key}'><figcaption>{e(title)}</figcaption>"
                     f"<img alt='{e(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></figure>")
    if learn_rows:
        parts.append("<h2>Learning curve</h2>" + _html_table(learn_head, learn_rows))
    parts.append(f"<h2>Cost per million events</h2>{_html_table(COST_HEAD, _cost_rows(r))}<p class='note'>{e(cost_note)}</p>")
    parts.append("<h2>Teacher–student disagreements</h2>"
                 + (_html_table(AGR_HEAD, _agr_rows(r)) if _agr_rows(r) else "<p>None.</p>"))
    parts.append("<h2>Given labels a confident teacher contradicts (disagreements.jsonl)</h2>"
                 + (_html_table(DIS_HEAD, _dis_rows(r)) if r["disagreements"] else "<p>None.</p>"))
    if r["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in r["notes"]) + "</ul>")
    parts.append("</body></html>\n")

    md = [f"# smallworld report: {_md_cell(task.name)}", "", _md_cell(head), "", "## Summary", ""]
    md += [f"* {_md_cell(s)}" for s in summary] + [f"* {_md_cell(agr_line)}", "", "## Metrics (from the manifest)", "",
                                                   _md_table(METRIC_HEAD, _metric_rows(r)), ""]
    if learn_rows:
        md += ["## Learning curve", "", _md_table(learn_head, learn_rows), ""]
    md += ["## Cost per million events", "", _md_table(COST_HEAD, _cost_rows(r)), "", cost_note, "", "## Figures", ""]
    md += [f"![{title}](figures/{key}.png)" for key, (title, _) in r["figs"].items()] + [""]
    if _agr_rows(r):
        md += ["## Teacher–student disagreements", "", _md_table(AGR_HEAD, _agr_rows(r)), ""]
    if r["disagreements"]:
        md += ["## Given labels a confident teacher contradicts", "", _md_table(DIS_HEAD, _dis_rows(r)), ""]
    if r["notes"]:
        md += ["## Notes", ""] + [f"* {_md_cell(n)}" for n in r["notes"]] + [""]
    return "".join(parts), "\n".join(md)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, cpu_price_per_hour: float = 0.05) -> Path:
    """Write report.html, report.md and figures/*.png into out_dir (default: RUN_DIR/report); returns out_dir."""
    r = build(run_dir, cpu_price_per_hour)
    out = Path(out_dir) if out_dir else Path(run_dir) / "report"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for key, (_, png) in r["figs"].items():
        (out / "figures" / f"{key}.png").write_bytes(png)
    h, md = render(r)
    (out / "report.html").write_text(h, encoding="utf-8")
    (out / "report.md").write_text(md, encoding="utf-8")
    return out
