"""``smallworld run CONFIG.toml``: every stage from one TOML file, resumable stage by stage.

A run config names the task (a built-in name, a task TOML file, or an inline ``[task]`` table read by
:func:`smallworld.tasks.load_task`), the data, the teacher and the training parameters; its keys map onto
:class:`smallworld.pipeline.TrainConfig` fields. A run writes a folder::

    RUN/run.json          inputs + sha256, parameters, teacher usage, outputs, per-stage status and timings
    RUN/model/            the train stage (select + label + train + evaluate): smallworld train's output
    RUN/report/           the report stage: report.html, report.md, figures/

A stage whose outputs exist and whose key (a hash of its parameters and input files) matches the last
run's is skipped. Teacher answers are cached durably in any case, so a changed stage asks nothing twice.
Input paths are relative to the config file's folder; ``out`` is relative to the current directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
import tomllib
from dataclasses import asdict, fields
from pathlib import Path

from .choices import STRATEGIES
from .errors import SmallworldError
from .pipeline import TrainConfig, input_digest, sha256_file
from .tasks import BUILTIN, TRAIN_DEFAULTS, load_task

# config section -> {config key: TrainConfig field}
SECTIONS: dict[str, dict[str, str]] = {
    "data": {k: k for k in ("labelled", "unlabelled", "synthetic", "lend_links", "dev", "holdout_sources", "seed_size", "on_error")},
    "teacher": {"url": "teacher", "model": "teacher_model", **{k: k for k in (
        "endpoint", "concurrency", "timeout", "retries", "api_key_env", "price_prompt_per_1k",
        "price_completion_per_1k", "cache", "budget", "strategy", "rounds", "round_sizes", "calibration", "teacher_eval", "shots",
        "prompt", "rubric", "combine_rule")}},
    "train": {k: k for k in ("alpha", "beta", "temperature", "targets", "confidence_weight", "agreement_weight", "noisy",
                             "noisy_threshold", "noisy_check", "noisy_needs_student", "inherit_weight", "l2", "seed",
                             "student", "pseudo_label", "pseudo_weight", "pseudo_temperature",
                             "pseudo_max")},
}
REPORT_KEYS = {"enabled": True, "cpu_price_per_hour": 0.05}
TOP_KEYS = ("task", "out", *SECTIONS, "report")
# fields whose default is None (or a union): the types a config may give them
_NULLABLE = {"prompt": str, "dev": str, "teacher": str, "teacher_model": str, "cache": str, "seed_size": int,
             "alpha": float, "pseudo_label": int, "lend_links": str}
_PATHS = ("labelled", "unlabelled", "synthetic", "lend_links", "dev", "cache")


def _check_type(where: str, key: str, name: str, v):
    want = {"holdout_sources": list, "unlabelled": list, "labelled": list, "synthetic": list,
            "round_sizes": "ints"}.get(name) or _NULLABLE.get(name)
    if want is None:
        want = type({f.name: f for f in fields(TrainConfig)}[name].default)
    ok = {bool: lambda x: isinstance(x, bool),
          int: lambda x: isinstance(x, int) and not isinstance(x, bool),
          float: lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
          str: lambda x: isinstance(x, str),
          list: lambda x: isinstance(x, str) or (isinstance(x, list) and all(isinstance(i, str) for i in x)),
          "ints": lambda x: isinstance(x, list) and all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in x)}[want](v)
    if not ok:
        kind = {list: "a string or a list of strings", float: "a number",
                "ints": "a list of positive integers"}.get(want) or want.__name__
        raise SmallworldError(f"{where}: {key!r} must be {kind}, not {v!r}")
    if want is float:
        return float(v)
    if want is list and isinstance(v, str):
        return [v]
    return v


def _unknown(where: str, key: str, known) -> SmallworldError:
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return SmallworldError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(known))}")


def parse_override(s: str) -> tuple[list[str], object]:
    """``section.key=value`` (value read as a TOML value, else as a string)."""
    if "=" not in s:
        raise SmallworldError(f"--set {s!r}: expected KEY=VALUE, e.g. teacher.url=http://127.0.0.1:8080/v1")
    k, v = s.split("=", 1)
    try:
        val = tomllib.loads(f"v = {v}")["v"]
    except tomllib.TOMLDecodeError:
        val = v
    return k.strip().split("."), val


def read_config(path: str | Path, overrides: list[str] = ()) -> dict:
    p = Path(path)
    if not p.is_file():
        raise SmallworldError(f"{p}: no such config file")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SmallworldError(f"{p}: not a valid TOML file: {e}") from None
    for o in overrides:
        keys, val = parse_override(o)
        d = raw
        for k in keys[:-1]:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                raise SmallworldError(f"--set {o!r}: {k!r} is not a table")
        d[keys[-1]] = val
    return raw


def load_config(path: str | Path, overrides: list[str] = (), out: str | None = None) -> tuple[TrainConfig, dict, Path]:
    """The TrainConfig a run config describes, its [report] settings, and the run folder."""
    path = Path(path)
    raw = read_config(path, overrides)
    base = path.resolve().parent
    for k in raw:
        if k not in TOP_KEYS:
            raise _unknown(str(path), k, TOP_KEYS)
    kw: dict = {}
    for sec, keys in SECTIONS.items():
        table = raw.get(sec, {})
        if not isinstance(table, dict):
            raise SmallworldError(f"{path}: [{sec}] must be a table")
        for k, v in table.items():
            if k not in keys:
                raise _unknown(f"{path}: [{sec}]", k, keys)
            kw[keys[k]] = _check_type(f"{path}: [{sec}]", k, keys[k], v)
    if "labelled" not in kw:
        raise SmallworldError(f"{path}: [data] needs 'labelled' (a file of labelled rows, or a list of files)")
    if "teacher" in kw and kw["teacher"] in ("none", ""):
        kw["teacher"] = None

    def resolve(v: str) -> str:
        q = Path(v).expanduser()
        q = q if q.is_absolute() else base / q
        return str(q)

    for k in _PATHS:
        if kw.get(k) is None:
            continue
        kw[k] = [resolve(x) for x in kw[k]] if isinstance(kw[k], list) else resolve(kw[k])
        for f in (kw[k] if isinstance(kw[k], list) else [kw[k]]):
            if k != "cache" and not Path(f).exists():
                raise SmallworldError(f"{path}: [data] {k}: no such file {f}")
    if len(kw["labelled"]) == 1:
        kw["labelled"] = kw["labelled"][0]

    task = raw.get("task")
    if task is None:
        raise SmallworldError(f"{path}: needs 'task': a built-in task ({', '.join(BUILTIN)}), a task TOML file, "
                              f"or a [task] table")
    if isinstance(task, str) and task not in BUILTIN:
        task = resolve(task)
    elif not isinstance(task, (str, dict)):
        raise SmallworldError(f"{path}: 'task' must be a name, a file or a [task] table")
    try:
        load_task(task)  # validate now: one clear error before any work
    except SmallworldError as e:
        raise SmallworldError(f"{path}: [task]: {e}") from None

    report = dict(REPORT_KEYS)
    rt = raw.get("report", {})
    if not isinstance(rt, dict):
        raise SmallworldError(f"{path}: [report] must be a table")
    for k, v in rt.items():
        if k not in REPORT_KEYS:
            raise _unknown(f"{path}: [report]", k, REPORT_KEYS)
        if type(v) is not type(REPORT_KEYS[k]) and not (isinstance(REPORT_KEYS[k], float) and isinstance(v, int)):
            raise SmallworldError(f"{path}: [report] {k!r} must be {type(REPORT_KEYS[k]).__name__}, not {v!r}")
        report[k] = v

    o = out or raw.get("out") or f"runs/{load_task(task).name}"
    if not isinstance(o, str):
        raise SmallworldError(f"{path}: 'out' must be a folder path")
    run_dir = Path(o).expanduser()
    cfg = TrainConfig(task=task, out=str(run_dir / "model"), **kw)
    return cfg, report, run_dir


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _inputs(cfg: TrainConfig) -> dict:
    """Each input's digest (a file's sha256; a directory's over its files; stdin marked as such)."""
    return {p: input_digest(p) for p in cfg.input_paths()}


def train_key(cfg: TrainConfig, inputs: dict) -> str:
    params = {k: v for k, v in asdict(cfg).items() if k not in ("out", "progress", "cache", "task")}
    return _sha({"params": params, "inputs": inputs, "task": load_task(cfg.task).to_dict(),
                 "smallworld": __import__("smallworld").__version__})


def run(config: str | Path, overrides: list[str] = (), out: str | None = None, force: bool = False,
        echo=print) -> dict:
    """Run (or resume) every stage of a run config; returns run.json's contents."""
    cfg, report_cfg, run_dir = load_config(config, overrides, out)
    r = _Run(config, overrides, cfg, report_cfg, run_dir, force, echo)
    model_dir = Path(cfg.out)
    manifest_path = model_dir / "manifest.json"

    def do_train():
        from .pipeline import comparison_table, train

        echo(comparison_table(train(cfg).manifest))

    r.stage("train", train_key(cfg, r.inputs), [manifest_path, model_dir / "model.json"], do_train)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    r.state["teacher"] = manifest.get("teacher", {})
    r.state["metrics"] = manifest.get("metrics", {})
    if report_cfg["enabled"]:
        rep_dir = run_dir / "report"

        def do_report():
            from .report import write_report

            write_report(model_dir, rep_dir, cpu_price_per_hour=report_cfg["cpu_price_per_hour"])

        r.stage("report", _sha({"manifest": sha256_file(str(manifest_path)), "report": report_cfg,
                                "smallworld": r.state["smallworld"]}),
                [rep_dir / "report.html", rep_dir / "report.md"], do_report)
    r.state["outputs"] = {"model": str(model_dir), **({"report": str(run_dir / "report")} if report_cfg["enabled"] else {})}
    r.state["finished"] = _now()
    r.save()
    return r.state


class _Run:
    """A run folder's ``run.json``: each stage's key, status, timings and output digests, saved as it changes;
    a stage whose key and outputs match the last run is skipped."""

    def __init__(self, config, overrides, cfg: TrainConfig, report_cfg: dict, run_dir: Path, force: bool, echo):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path, self.force, self.echo = run_dir / "run.json", force, echo
        prev = {}
        if self.path.exists():
            try:
                prev = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                prev = {}
        self.prev = prev.get("stages", {}) if isinstance(prev, dict) else {}
        self.inputs = _inputs(cfg)
        self.state = {"smallworld": __import__("smallworld").__version__, "config": str(Path(config).resolve()),
                      "config_sha256": sha256_file(str(config)), "overrides": list(overrides),
                      "inputs": self.inputs, "parameters": {k: v for k, v in asdict(cfg).items() if k != "progress"},
                      "report_parameters": report_cfg, "stages": {}}

    def save(self) -> None:
        self.path.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")

    def fresh(self, name: str, key: str, outputs: list[Path]) -> bool:
        p = self.prev.get(name, {})
        if self.force or p.get("key") != key or p.get("status") not in ("done", "skipped"):
            return False
        got = p.get("outputs", {})
        return all(o.is_file() and got.get(o.name) == sha256_file(str(o)) for o in outputs)

    def stage(self, name: str, key: str, outputs: list[Path], fn) -> None:
        t0 = time.perf_counter()
        st = self.state["stages"]
        if self.fresh(name, key, outputs):
            p = self.prev[name]
            st[name] = p | {"status": "skipped", "seconds": 0.0,
                            "last_run_seconds": p.get("seconds") if p.get("status") == "done" else p.get("last_run_seconds")}
            self.echo(f"stage {name}: up to date, skipped")
            self.save()
            return
        st[name] = {"status": "running", "key": key, "started": _now()}
        self.save()
        try:
            fn()
        except BaseException as e:
            st[name] |= {"status": "failed", "error": str(e) or type(e).__name__,
                         "seconds": round(time.perf_counter() - t0, 3)}
            self.save()
            raise
        st[name] |= {"status": "done", "seconds": round(time.perf_counter() - t0, 3),
                     "outputs": {o.name: sha256_file(str(o)) for o in outputs if o.is_file()}}
        self.save()
        self.echo(f"stage {name}: done in {st[name]['seconds']:.1f} s")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- smallworld init ----------------------------------------------------------------------------------------

def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


_NOTES = {
    "labelled": "labelled rows (JSONL[.gz], CSV, Parquet); a list of files: a later file's row replaces an earlier "
                "row with the same text (put `smallworld review import` output last)",
    "unlabelled": "unlabelled rows the teacher may be asked about",
    "synthetic": "rows written by `smallworld synth` (training only, never evaluated)",
    "lend_links": "labelled URLs (e.g. the urls task's data): a copy of each seed row gets one, phishing for "
                  "phishing rows, benign for the rest (mail whose corpus lost its links)",
    "round_sizes": "teacher calls per round, e.g. [250, 250, 500] (overrides budget and rounds)", "dev": "labelled rows for evaluation and thresholds",
    "holdout_sources": "leave these sources out of training and evaluate on them",
    "seed_size": "sample this many labelled rows as the seed (all when absent)",
    "on_error": "malformed rows: raise or skip", "url": "'embedded', an OpenAI-compatible base URL, or 'none'",
    "model": "model name on the server", "endpoint": "completions or chat", "cache": "teacher cache (SQLite) path",
    "budget": "teacher calls on unlabelled rows", "strategy": "what to ask the teacher: " + ", ".join(STRATEGIES),
    "rounds": "train -> select -> ask this many times, splitting the budget",
    "calibration": "teacher calls on seed rows (calibration and the noisy-label check)",
    "teacher_eval": "teacher calls on evaluation rows", "prompt": "demonstrations: hybrid, similar, fixed or zero, or an ensemble such as zero+fixed (absent: the task's default)",
    "rubric": "the task's rubric in the teacher's prompt",
    "combine_rule": "teacher with seed-only student: equal (each calibrated, log-odds summed) or learned (one regression)",
    "agreement_weight": "weight teacher rows by the share of the prompt ensemble's members that agree",
    "shots": "demonstrations per class", "alpha": "weight of given labels (absent: the task's default)", "beta": "weight of teacher labels",
    "temperature": "teacher probability temperature (<1 sharpens)", "targets": "raw or calibrated",
    "noisy": "rows a confident teacher contradicts: keep, drop, relabel or downweight",
    "noisy_check": "extra seed rows the teacher checks for label noise",
    "student": "linear (hashed n-grams) or cnn (character CNN, ONNX)",
    "pseudo_label": "rounds of pseudo-labelling (self-training): the student labels the unlabelled rows the teacher was "
                    "not asked about (absent: the task's default)",
    "pseudo_weight": "weight of a row the student labelled itself",
    "pseudo_temperature": "the student's own probabilities sharpened by this (<1) before it learns them",
    "pseudo_max": "at most this many unasked rows (a random sample) are labelled by the student",
}


def starter_config(task: str) -> str:
    """A commented starter run config for a built-in task, a task file, or (any other name) a new task."""
    lines = ["# smallworld run config: `smallworld run THIS.toml` runs every stage (train, report), resumably.",
             "# Input paths are relative to this file's folder; `out` is relative to the current directory.", ""]
    if task in BUILTIN or Path(task).is_file():
        t = load_task(task)
        lines += [f"task = {_toml(task)}" + ("  # a built-in task" if task in BUILTIN else "")]
        name = t.name
        d = TrainConfig(task=task, labelled="", out="")  # the task's own defaults
    else:
        name = task
        d = TrainConfig(task="", labelled="", out="", **TRAIN_DEFAULTS)
        lines += ["# A new task, defined here (the same keys as a task TOML file). Edit every line.",
                  "[task]", f"name = {_toml(task)}", '# labels: a list of names, or a table of name = "what it means" (the descriptions become the rubric)',
                  'labels = { positive_label = "what makes an item positive", negative_label = "what makes it negative" }',
                  'positive = "positive_label"        # a score is the probability of this label',
                  'field = "Item"                      # the prompt names each item with this word',
                  'question = "Positive"               # the prompt\'s answer line',
                  'answers = { positive_label = "yes", negative_label = "no" }  # one distinct word per label',
                  'instruction = "You are a security analyst. Decide whether each item is ..."',
                  'normaliser = "none"                 # none | lower | email',
                  "max_item_chars = 600", "[task.features]", "ngram_min = 1", "ngram_max = 5", "tokens = true",
                  "lowercase = true", "dim_bits = 18"]
        lines = lines[:3] + [f"out = {_toml('runs/' + name)}", ""] + lines[3:]
    if task in BUILTIN or Path(task).is_file():
        lines += [f"out = {_toml('runs/' + name)}"]
    defaults = asdict(d)
    for sec, keys in SECTIONS.items():
        lines += ["", f"[{sec}]"]
        for k, f in keys.items():
            note = f"  # {_NOTES[k]}" if k in _NOTES else ""
            if k == "labelled":
                lines.append(f'labelled = "seed.jsonl"{note}')
            elif k == "url":
                lines.append(f'url = "embedded"{note}')
            elif defaults[f] is None or defaults[f] == []:
                lines.append(f"# {k} = ...{note}")
            else:
                lines.append(f"# {k} = {_toml(defaults[f])}{note}")
    lines += ["", "[report]", "# enabled = true", "# cpu_price_per_hour = 0.05  # $ per core-hour, for the student's cost"]
    return "\n".join(lines) + "\n"

