"""The training pipeline: seed -> teacher labels (calibrated) -> seed-only and distilled students -> evaluation.

Every run writes into its output directory the student (``model.json`` + ``weights.bin``), a seed-only
baseline (``seed_only/``), the teacher's labels (``teacher_labels.jsonl``), rows where a confident teacher
contradicts the given label (``disagreements.jsonl``) and ``manifest.json`` (inputs and their sha256, the
configuration, teacher usage, metrics, timings). Teacher answers are cached durably as they arrive, so a run
killed at any point and started again asks the teacher nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import choices as C
from . import data as D
from . import evaluate as E
from . import calibrate
from .teacher import prompting
from . import selection
from . import synth
from .errors import SmallworldError
from .progress import info
from .student import modelfile
from .student.linear import LinearStudent
from .tasks import TRAIN_DEFAULTS, Task, load_task, prompt_modes


# Options with a fixed set of values (the CLI offers exactly these; TrainConfig refuses anything else).
CHOICES: dict[str, tuple[str, ...]] = {"endpoint": C.ENDPOINTS, "combine_rule": C.COMBINE_RULES, "targets": C.TARGETS,
                                        "noisy": C.NOISY, "strategy": C.STRATEGIES, "on_error": C.ON_ERROR,
                                        "student": C.STUDENTS}


@dataclass
class TrainConfig:
    task: str | dict             # a built-in task's name, a task TOML file, or a task table
    labelled: str | list[str]    # one file, or several: a later file's row replaces an earlier row with the same text
    out: str
    unlabelled: list[str] = field(default_factory=list)
    synthetic: list[str] = field(default_factory=list)  # rows from `smallworld synth`: training only, never evaluated
    lend_links: str | None = None  # labelled URLs lent to copies of the seed's rows (synth.lend_links), e.g. for mail
    dev: str | None = None
    teacher: str | None = "embedded"
    teacher_model: str | None = None
    endpoint: str = "completions"
    concurrency: int = 4
    timeout: float = 60.0
    retries: int = 5
    api_key_env: str = "OPENAI_API_KEY"
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    cache: str | None = None
    budget: int = 300
    calibration: int = 100       # teacher calls on seed rows: calibration and the noisy-label check
    teacher_eval: int = 200      # teacher calls on evaluation rows (class-balanced sample), for the teacher's row
    shots: int = 3               # demonstrations per class
    prompt: str | None = None    # hybrid | similar | fixed | zero, or several joined by + (an ensemble); None: the task's
    rubric: bool = True          # the task's rubric in the teacher's prompt
    combine_rule: str = "equal"  # equal | learned: how the teacher_student row (and --targets combined) joins the two
    holdout_sources: list[str] = field(default_factory=list)
    seed_size: int | None = None
    alpha: float | None = None   # weight of a row with a given label; None: the task's default, filled in at once
    beta: float = 1.0            # weight of a teacher-labelled row (times its confidence)
    temperature: float = 1.0     # teacher probabilities sharpened (T < 1) or softened (T > 1) before training
    targets: str = "raw"         # raw | calibrated | combined (teacher + seed-only student): what the student learns
    confidence_weight: bool = False  # weight teacher rows by the teacher's confidence (1 - normalised entropy)
    agreement_weight: bool = False   # weight teacher rows by the share of ensemble members agreeing with the mean
    noisy: str = "downweight"    # keep | drop | relabel | downweight rows a confident teacher contradicts
    noisy_threshold: float = 0.9
    noisy_check: int = 0         # extra seed rows the teacher checks for label noise (beyond calibration rows)
    noisy_needs_student: bool = True  # flag a label only if the cross-validated student also contradicts it
    strategy: str = C.DEFAULT_STRATEGY  # one of choices.STRATEGIES
    rounds: int = 1
    round_sizes: list[int] = field(default_factory=list)  # explicit calls per round (overrides budget/rounds)
    inherit_weight: float = 0.5  # weight of a near-duplicate that inherits its representative's answer
    pseudo_label: int | None = None  # rounds of self-training on the unasked unlabelled rows; None: the task's default
    pseudo_weight: float = 1.0       # weight of a row labelled by the student itself
    pseudo_temperature: float = 0.5  # the student's own probabilities sharpened by this before it learns them
    pseudo_max: int = 20000  # unasked rows (a random sample) the student labels itself
    l2: float = 1e-4
    seed: int = 0
    on_error: str = "raise"
    progress: bool = True
    student: str = "linear"      # linear | cnn: the family of the distilled student (the seed-only one is linear)

    def input_paths(self) -> list[str]:
        """Every file the run reads, in order (what the manifest digests)."""
        return [*_paths(self.labelled), *self.unlabelled, *self.synthetic, *([self.lend_links] if self.lend_links else []),
                *([self.dev] if self.dev else [])]

    def __post_init__(self):
        """Every option checked here, once, for every door (CLI, run config, Python API, bench)."""
        if self.alpha is None or self.pseudo_label is None:  # the task's [train] defaults, else the general ones
            train = load_task(self.task).train
            for k, default in TRAIN_DEFAULTS.items():
                if getattr(self, k) is None:
                    setattr(self, k, type(default)(train.get(k, default)))
        for name, allowed in CHOICES.items():
            D.check_choice(f"--{name.replace('_', '-')}", getattr(self, name), allowed)
        for name in ("budget", "calibration", "teacher_eval", "noisy_check", "concurrency", "retries"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (1 if name == "concurrency" else 0):
                raise SmallworldError(f"--{name.replace('_', '-')} must be a whole number"
                                      + (" of at least 1" if name == "concurrency" else " (0 or more)"))
        if self.shots < 0 or self.timeout <= 0 or self.temperature <= 0 or self.alpha < 0 or self.beta < 0:
            raise SmallworldError("--shots, --alpha and --beta must be 0 or more; --timeout and --temperature positive")
        if self.seed_size is not None and self.seed_size < 2:
            raise SmallworldError("--seed-size must be at least 2")
        if self.rounds < 1:
            raise SmallworldError("--rounds must be at least 1")
        if not isinstance(self.pseudo_label, int) or self.pseudo_label < 0 or self.pseudo_max < 0:
            raise SmallworldError("--pseudo-label and pseudo_max must be whole numbers (0 or more)")
        if self.pseudo_weight < 0 or self.pseudo_temperature <= 0:
            raise SmallworldError("--pseudo-weight must be 0 or more and pseudo_temperature positive")
        if self.round_sizes:
            if any(int(b) < 1 for b in self.round_sizes):
                raise SmallworldError("--round-sizes must be positive integers")
            self.budget, self.rounds = sum(int(b) for b in self.round_sizes), len(self.round_sizes)
        if self.teacher is not None:
            from .teacher import check_spec

            check_spec(self.teacher)
        if self.prompt is not None:
            try:
                prompt_modes(self.prompt)
            except ValueError as e:
                raise SmallworldError(f"--prompt: {e}") from None


@dataclass
class FitOptions:
    """What fitting a student needs of a configuration (the attributes :class:`TrainConfig` also has): the
    labelling core fits its students with these defaults, without a training configuration."""
    alpha: float = 1.0
    beta: float = 1.0
    temperature: float = 1.0
    confidence_weight: bool = False
    l2: float = 1e-4
    seed: int = 0
    student: str = "linear"


@dataclass
class TrainResult:
    """What ``train`` made: the model directory, the loaded distilled student, and the manifest (inputs,
    configuration, teacher usage, metrics, thresholds, timings, artifacts)."""
    out: Path
    manifest: dict

    @property
    def model(self):
        from .student.model import Model

        return Model(self.out)

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _load_labelled(path: str | list[str], task: Task, on_error: str, stats: D.ReadStats | None = None) -> list[dict]:
    if isinstance(path, (list, tuple)):  # later files win: an analyst's review overrides the label it corrects
        by_text: dict[str, dict] = {}
        for p in path:
            for r in _load_labelled(p, task, on_error, stats):
                by_text.pop(r["text"], None)
                by_text[r["text"]] = r
        return list(by_text.values())
    rows = [r for r in D.read_rows(path, on_error=on_error, stats=stats) if "label" in r]
    if not rows:
        raise SmallworldError(f"{path}: no labelled rows (rows need a 'label' field)")
    D.check_labels(rows, task.labels, path)
    return rows


def load_synthetic(paths: list[str], task: Task, on_error: str, stats: D.ReadStats) -> list[dict]:
    """Rows written by `smallworld synth`: labelled, weighted, and marked ``source = "synthetic:..."`` (a file
    whose rows lack the mark is refused, so real data is never mistaken for synthetic or the reverse)."""
    rows: list[dict] = []
    for p in paths:
        got = _load_labelled(p, task, on_error, stats)
        bad = [r["id"] for r in got if not str(r.get("source", "")).startswith("synthetic:")]
        if bad:
            raise SmallworldError(f"{p}: {len(bad)} rows are not marked source = \"synthetic:...\" (first: {bad[0]}); "
                                  "--synthetic takes the output of `smallworld synth`")
        rows += got
    return rows


def stratified_sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    """n rows keeping the label proportions (at least a few of each label)."""
    if n >= len(rows):
        return list(rows)
    rng = np.random.default_rng(seed)
    by = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    out = []
    for lab, rs in sorted(by.items()):
        k = max(min(5, len(rs)), int(round(n * len(rs) / len(rows))))
        idx = rng.choice(len(rs), size=min(k, len(rs)), replace=False)
        out.extend(rs[i] for i in sorted(idx))
    return out[:n] if len(out) > n else out


def holdout_split(task: Task, labelled: list[dict], dev: list[dict], sources: list[str]) -> tuple[list, list]:
    """Leave-sources-out: training rows without the held-out sources, and an evaluation set made of the
    held-out sources' rows plus, for any class they lack, dev rows of that class from other sources."""
    H = set(sources)
    known = {r.get("source") for r in labelled} | {r.get("source") for r in dev}
    missing = H - known
    if missing:
        raise SmallworldError(f"--holdout-source: no rows from {sorted(missing)}; sources are {sorted(s for s in known if s)}")
    train = [r for r in labelled if r.get("source") not in H]
    seen, ev = set(), []
    for r in labelled + dev:
        if r.get("source") in H and r["id"] not in seen:
            seen.add(r["id"])
            ev.append(r)
    have = {r["label"] for r in ev}
    for r in dev:
        if r["label"] not in have and r.get("source") not in H:
            ev.append(r)
    return train, ev


def onehot(task: Task, labels: list[str]) -> np.ndarray:
    Y = np.zeros((len(labels), len(task.labels)))
    for i, lab in enumerate(labels):
        Y[i, task.labels.index(lab)] = 1.0
    return Y


def _noisy_handling(cfg: TrainConfig, seed_rows: list[dict], Y: np.ndarray, w: np.ndarray,
                    noisy: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Targets and weights of the seed rows after handling labels a confident teacher contradicts."""
    Y, w = Y.copy(), w.copy()
    for i, r in enumerate(seed_rows):
        p = noisy.get(r["id"])
        if p is None or cfg.noisy == "keep":
            continue
        if cfg.noisy == "drop":
            w[i] = 0.0
        elif cfg.noisy == "relabel":
            Y[i] = calibrate.sharpen(p[None, :], cfg.temperature)[0]
        else:  # downweight
            w[i] *= 0.25
    return Y, w


def cross_val_proba(task: Task, cfg: TrainConfig, texts: list[str], Y: np.ndarray, w: np.ndarray,
                    folds: int = 5, groups: list | None = None,
                    always: tuple[list[str], np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Out-of-fold probabilities of linear students (each row scored by a model that never saw it).
    With ``groups`` (the rows' ``group``: tool, host or sender) whole groups fall in one fold, so a row is
    scored by a model that never saw its tool either: the student's confidence on unfamiliar items, which is
    what the teacher-and-student combination must weigh (random folds flatter the student). ``always``:
    more rows (texts, targets, weights) in every fold's training set, never scored."""
    n = len(texts)
    rng = np.random.default_rng(cfg.seed + 3)
    if groups is not None:
        uniq = sorted({str(g) for g in groups})
        gfold = dict(zip(uniq, rng.permutation(len(uniq)) % folds))
        fold = np.array([gfold[str(g)] for g in groups])
    else:
        fold = rng.permutation(n) % folds
    at, aY, aw = always if always is not None else ([], np.zeros((0, Y.shape[1])), np.zeros(0))
    out = np.zeros_like(Y)
    for f in range(folds):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if len(te) == 0 or len(set(np.vstack([Y[tr], aY]).argmax(axis=1))) < 2:
            out[te] = 1.0 / Y.shape[1]
            continue
        m = LinearStudent(task.labels, dict(task.features), l2=cfg.l2).fit(
            [texts[i] for i in tr] + list(at), np.vstack([Y[tr], aY]), np.concatenate([w[tr], aw]))
        out[te] = m.predict_proba([texts[i] for i in te])
    return out


def self_trained_student(task: Task, cfg: TrainConfig, seed_rows: list[dict], texts: list[str],
                         P: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The student half of `label`'s default teacher-with-student combination: a linear student trained on
    the seed and on the teacher's (raw) answers for the items being labelled, so it learns what the teacher
    sees in *this* data, a source the seed may lack. Cross-fitted both ways:

    * each item is scored by a student that never saw the teacher's answer for it or for its near-duplicates
      (5 folds by near-duplicate cluster), so its opinion is evidence beside the teacher's, not an echo;
    * each seed row by one that never saw its group (as :func:`seed_cross_val`) but saw every teacher
      answer: what the combination's calibration on the seed's calibration rows needs.

    ``texts`` are normalised items with usable answers (no NaN rows in ``P``). Returns (item probabilities,
    seed-row out-of-fold probabilities by id)."""
    st = [task.view(r) for r in seed_rows]
    Ys, ws = onehot(task, [r["label"] for r in seed_rows]), np.ones(len(seed_rows))
    wt = np.full(len(texts), cfg.beta)
    P_items = cross_val_proba(task, cfg, texts, P, wt, groups=list(selection.near_duplicate_clusters(texts, cfg.seed)),
                              always=(st, Ys, cfg.alpha * ws)) if len(texts) else np.zeros((0, len(task.labels)))
    cv = cross_val_proba(task, cfg, st, Ys, cfg.alpha * ws, groups=row_groups(seed_rows), always=(texts, P, wt))
    return P_items, dict(zip([r["id"] for r in seed_rows], cv))


def row_groups(rows: list[dict]) -> list[str]:
    """Each row's group (tool, host, sender), or its own id where it has none."""
    return [str(r.get("group") or r["id"]) for r in rows]


def seed_cross_val(task: Task, cfg: TrainConfig, rows: list[dict], texts: list[str], Y: np.ndarray,
                   w: np.ndarray) -> dict[str, np.ndarray]:
    """Group-out-of-fold probabilities of the seed rows, by id: what the noisy-label check and the
    teacher-and-student combination weigh the teacher against."""
    return dict(zip([r["id"] for r in rows], cross_val_proba(task, cfg, texts, Y, w, groups=row_groups(rows))))


def seed_student(task: Task, cfg: TrainConfig, seed_rows: list[dict]):
    """The seed-only student of the teacher-with-student combination (one-hot targets, weight 1) and its
    group-out-of-fold probabilities for the seed rows, by id (what its calibration is fitted on)."""
    st = [task.view(r) for r in seed_rows]
    Y, w = onehot(task, [r["label"] for r in seed_rows]), np.ones(len(seed_rows))
    return (LinearStudent(task.labels, dict(task.features), l2=cfg.l2).fit(st, Y, w),
            seed_cross_val(task, cfg, seed_rows, st, Y, w))


def fit_distilled(task: Task, cfg: TrainConfig, seed_texts: list[str], Y_seed: np.ndarray, w_seed: np.ndarray,
                  texts: list[str], P: np.ndarray, w_teacher: np.ndarray):
    """One student on the seed (one-hot targets, weight alpha) and the teacher's rows (its probabilities at the
    temperature, weight beta, optionally times its confidence)."""
    T = [Y_seed]
    W = [cfg.alpha * w_seed]
    allt = list(seed_texts)
    if len(P):
        allt += texts
        T.append(calibrate.sharpen(P, cfg.temperature))
        W.append(cfg.beta * w_teacher * (calibrate.confidence(P) if cfg.confidence_weight else 1.0))
    if cfg.student == "cnn":
        from .student.cnn import CNNStudent

        return CNNStudent(task.labels, seed=cfg.seed).fit(allt, np.vstack(T), np.concatenate(W))
    return LinearStudent(task.labels, dict(task.features), l2=cfg.l2).fit(allt, np.vstack(T), np.concatenate(W))


def _teacher_rows(task, cfg, targets, unl, asked, P_raw, A, inherit) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The teacher's rows as the student learns them: (views, targets, weights) of every usable answer so far
    and of the near-duplicates that inherit one; ``targets(P_raw, asked)`` maps the teacher's raw answers to
    what the student learns; ``A`` is the prompt ensemble's agreement per answer (a weight with
    ``agreement_weight``)."""
    P = targets(P_raw, asked)
    ok = ~np.isnan(P).any(axis=1)
    texts = [task.view(unl[i]) for i, k in zip(asked, ok) if k]
    Pt = P[ok]
    a = A if cfg.agreement_weight else np.ones(len(P))
    w = a[ok]
    inh = [(m, j) for m, j in inherit if ok[j]]
    if inh:
        texts += [task.view(unl[m]) for m, _ in inh]
        Pt = np.vstack([Pt, P[[j for _, j in inh]]])
        w = np.concatenate([w, cfg.inherit_weight * a[[j for _, j in inh]]])
    return texts, Pt, w


def _fit_round(task, cfg, targets, seed_texts, Y_s, w_s, unl, asked, P_raw, A, inherit) -> LinearStudent:
    """The distilled student from the seed and every teacher answer so far (plus inherited near-duplicates)."""
    return fit_distilled(task, cfg, seed_texts, Y_s, w_s, *_teacher_rows(task, cfg, targets, unl, asked, P_raw, A,
                                                                          inherit))


def fit_pseudo_labelled(task: Task, cfg: TrainConfig, student, seed_texts: list[str], Y_s: np.ndarray,
                        w_s: np.ndarray, teacher_rows: tuple[list[str], np.ndarray, np.ndarray], texts: list[str]):
    """Pseudo-labelling (self-training): ``cfg.pseudo_label`` times, the student labels ``texts`` (unlabelled rows
    the teacher was not asked about, already in the student's view), its probabilities sharpened by
    ``pseudo_temperature``, and is refitted on the seed, the teacher's rows and these (weight
    ``pseudo_weight``); the caller gives it at least one teacher row and one text. What it adds is the unlabelled
    data's own vocabulary: n-grams that never met a teacher answer get weight from the ones that did (measured
    on `telemetry` in docs/benchmarks.md)."""
    tt, Pt, wt = teacher_rows
    w = np.concatenate([wt, np.full(len(texts), cfg.pseudo_weight)])
    for _ in range(cfg.pseudo_label):
        Q = calibrate.sharpen(student.predict_proba(texts), cfg.pseudo_temperature)
        student = fit_distilled(task, cfg, seed_texts, Y_s, w_s, tt + texts, np.vstack([Pt, Q]), w)
    return student


class Trainer:
    """One training run, a method per stage: :meth:`load` -> :meth:`fit_seed` -> :meth:`teach` (calibration,
    the noisy-label check, rounds of select -> ask -> retrain, the teacher's evaluation rows) -> :meth:`evaluate`
    -> :meth:`save`. :meth:`run` does them in order; ``train(cfg)`` is ``Trainer(cfg).run()``. Every input is
    checked (and the options were, by :class:`TrainConfig`) before a teacher call is made or a file written."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.task = load_task(cfg.task)
        cfg.prompt = cfg.prompt or self.task.prompt  # the manifest records the prompt actually used
        self.out = Path(cfg.out)
        self.timings: dict[str, float] = {}
        self.stats = D.ReadStats()
        nl = len(self.task.labels)
        self.teacher_info: dict = {"spec": cfg.teacher}
        self.disagreements: list[dict] = []
        self.checked: list[dict] = []
        self.teacher_eval: dict = {}
        self.asked: list[int] = []                  # indices into unl the teacher answered, in order
        self.P_raw_asked = np.zeros((0, nl))
        self.A_asked = np.zeros(0)                  # the prompt ensemble's agreement on each answer (1.0: one prompt)
        self.inherit: list[tuple[int, int]] = []    # (member index, position in asked of its representative)
        self.pseudo_labelled = 0                    # unasked rows the student labelled itself (pseudo_label)
        self.cal = self.comb = None
        self.metrics: dict = {}

    def run(self) -> TrainResult:
        t = time.perf_counter()
        self.check_inputs()
        self.load()
        self.fit_seed()
        if self.cfg.teacher:
            self.teach()
            self.pseudo_label()
        self.evaluate()
        self.timings["total"] = time.perf_counter() - t
        return self.save()

    # -- stages -------------------------------------------------------------------------------------------
    def check_inputs(self) -> None:
        """Every input exists and is readable, the output folder can be made; nothing is written yet."""
        cfg = self.cfg
        paths = cfg.input_paths()
        for p in paths:
            D.check_input(p)
        if paths.count("-") > 1:
            raise SmallworldError("standard input ('-') can be read once: give it to one input only")
        D.check_output_dir(self.out)

    def load(self) -> None:
        cfg, task, t0 = self.cfg, self.task, time.perf_counter()
        labelled = _load_labelled(cfg.labelled, task, cfg.on_error, self.stats)
        dev = _load_labelled(cfg.dev, task, cfg.on_error, self.stats) if cfg.dev else []
        heldout: list[dict] = []
        if cfg.holdout_sources:
            labelled, heldout = holdout_split(task, labelled, dev, cfg.holdout_sources)
            dev = [r for r in dev if r.get("source") not in set(cfg.holdout_sources)]
        self.seed_rows = stratified_sample(labelled, cfg.seed_size, cfg.seed) if cfg.seed_size else labelled
        if len({r["label"] for r in self.seed_rows}) < 2:
            raise SmallworldError("the labelled seed needs rows of at least two labels")
        self.synthetic = load_synthetic(cfg.synthetic, task, cfg.on_error, self.stats)
        self.lent = []
        if cfg.lend_links:
            urls = D.read_rows(cfg.lend_links, on_error=cfg.on_error, stats=self.stats)
            self.lent = synth.lend_links(self.seed_rows, urls, task.positive, seed=cfg.seed, where=cfg.lend_links)
            self.synthetic += self.lent
        self.unl: list[dict] = []
        for p in cfg.unlabelled:
            self.unl.extend(D.iter_rows(p, on_error=cfg.on_error, stats=self.stats))
        self.dev, self.heldout = dev, heldout
        self.timings["load"] = time.perf_counter() - t0
        self.eval_sets = {name: ([task.view(r) for r in rows],
                                 np.array([r["label"] == task.positive for r in rows]))
                          for name, rows in (("dev", dev), ("heldout", heldout)) if rows}
        if self.stats.skipped:
            info(f"skipped {self.stats.skipped} rows: {self.stats.reasons}", markup=False)
        info(f"[bold]{task.name}[/]: seed {len(self.seed_rows)} labelled rows ({_counts(self.seed_rows)})"
             + (f" + {len(self.synthetic)} synthetic ({_counts(self.synthetic)})" if self.synthetic else "") + ", "
             f"{len(self.unl)} unlabelled rows, teacher budget {cfg.budget if cfg.teacher else 0} "
             f"({cfg.strategy}, {cfg.rounds} round(s)); dev {len(dev)}, held-out {len(heldout)}")

    def fit_seed(self) -> None:
        """The seed-only student (synthetic rows train both students; demonstrations and checks use the seed)."""
        cfg, task, t0 = self.cfg, self.task, time.perf_counter()
        train_rows = self.seed_rows + self.synthetic
        self.seed_texts = [task.view(r) for r in train_rows]
        self.Y_seed = onehot(task, [r["label"] for r in train_rows])
        self.w_seed = np.array([float(r.get("weight", 1.0)) for r in train_rows])
        self.seed_only = LinearStudent(task.labels, dict(task.features), l2=cfg.l2).fit(
            self.seed_texts, self.Y_seed, self.w_seed)
        self.timings["train_seed_only"] = time.perf_counter() - t0
        self.distilled = self.seed_only
        if cfg.student != "linear" and not cfg.teacher:  # no teacher: the chosen family on the seed alone
            self.distilled = fit_distilled(task, cfg, self.seed_texts, self.Y_seed, self.w_seed, [],
                                           np.zeros((0, len(task.labels))), np.zeros(0))
        self.Y_s, self.w_s = self.Y_seed, self.w_seed

    def teach(self) -> None:
        from .teacher import make_teacher

        cfg, t0 = self.cfg, time.perf_counter()
        teacher = make_teacher(cfg.teacher, cache_path=cfg.cache, model=cfg.teacher_model, endpoint=cfg.endpoint,
                               concurrency=cfg.concurrency, timeout=cfg.timeout, retries=cfg.retries,
                               api_key_env=cfg.api_key_env, price_prompt_per_1k=cfg.price_prompt_per_1k,
                               price_completion_per_1k=cfg.price_completion_per_1k)
        demos = prompting.Demonstrations(self.task, self.seed_rows, k=cfg.shots, mode=cfg.prompt, rubric=cfg.rubric)
        rounds_info: list[dict] = []
        try:
            self.calibrate(teacher, demos)
            self.noisy_check(teacher, demos)
            budgets = [int(b) for b in cfg.round_sizes] or \
                [cfg.budget // cfg.rounds + (1 if r < cfg.budget % cfg.rounds else 0) for r in range(cfg.rounds)]
            folded = {selection._fold(r["text"]) for r in self.seed_rows}
            for rnd, b in enumerate(budgets):
                rounds_info.append(self.ask_round(teacher, demos, rnd, b, folded))
            self.ask_evaluation_rows(teacher, demos)
        finally:
            teacher.close()
            info(teacher.usage.render(), markup=False)
        self.teacher_info.update(usage=teacher.usage.to_dict(), model_id=teacher.model_id,
                                 calibration=self.cal.to_dict(), teacher_student=self.comb.to_dict(),
                                 rounds=rounds_info)
        self.timings["teacher"] = time.perf_counter() - t0
        who = "the teacher (p >= %g) and the cross-validated student" % cfg.noisy_threshold if cfg.noisy_needs_student \
            else "the teacher (p >= %g)" % cfg.noisy_threshold
        info(f"noisy-label check: {who} contradict {len(self.disagreements)} of {len(self.checked)} seed labels "
             f"checked (handling: {cfg.noisy}); see disagreements.jsonl")

    def calibrate(self, teacher, demos) -> None:
        """The teacher on class-balanced seed rows: its calibration, and its combination with the seed-only
        student (documented in :class:`~smallworld.calibrate.Combiner`)."""
        cfg, task = self.cfg, self.task
        self.cal_rows = calibrate.calibration_rows(demos, self.seed_rows, cfg.calibration, cfg.seed + 1)
        P_raw = prompting.ask_rows(teacher, task, demos, self.cal_rows, "teacher: calibration rows", cfg.progress,
                                   exclude=True)
        y = np.array([task.labels.index(r["label"]) for r in self.cal_rows], dtype=int)
        self.cal = calibrate.Calibrator(len(task.labels)).fit(P_raw, y)
        self.P_cal, self.P_cal_raw = self.cal.transform(P_raw), P_raw
        n = len(self.seed_rows)  # the seed's own rows (synthetic ones follow them)
        self.cv = seed_cross_val(task, cfg, self.seed_rows, self.seed_texts[:n], self.Y_seed[:n], self.w_seed[:n])
        self.comb = calibrate.Combiner(len(task.labels), cfg.combine_rule).fit(
            P_raw, np.array([self.cv[r["id"]] for r in self.cal_rows]), y)
        ok = ~np.isnan(self.P_cal).any(axis=1)
        if ok.sum() and len(set(y[ok])) > 1:
            self.teacher_info["calibration_metrics"] = {
                "raw": E.binary_metrics(y[ok] == task.pos_index, P_raw[ok, task.pos_index]),
                "calibrated": E.binary_metrics(y[ok] == task.pos_index, self.P_cal[ok, task.pos_index])}

    def noisy_check(self, teacher, demos) -> None:
        """Seed labels a confident teacher (and, by default, the cross-validated student) contradicts: the
        calibration rows plus ``noisy_check`` more; they are surfaced in disagreements.jsonl and handled."""
        cfg, task = self.cfg, self.task
        in_cal = {r["id"] for r in self.cal_rows}
        rest = [r for r in self.seed_rows if r["id"] not in in_cal and r["id"] not in demos.fixed_ids()]
        extra = [rest[i] for i in calibrate.sample_idx(len(rest), cfg.noisy_check, cfg.seed + 4)] if cfg.noisy_check else []
        P_extra = self.cal.transform(prompting.ask_rows(teacher, task, demos, extra, "teacher: noisy-label check",
                                                        cfg.progress, exclude=True))
        noisy: dict[str, np.ndarray] = {}
        self.checked = self.cal_rows + extra
        for r, p in zip(self.checked, np.vstack([self.P_cal, P_extra]) if len(extra) else self.P_cal):
            y = task.labels.index(r["label"])
            if np.isnan(p).any() or p[y] > 1 - cfg.noisy_threshold:
                continue
            if cfg.noisy_needs_student and not self.cv[r["id"]][y] < 0.5:
                continue
            self.disagreements.append({"id": r["id"], "text": r["text"], "label": r["label"],
                                       "teacher": task.labels[int(np.argmax(p))], "probs": _round(p),
                                       "student_cv_probs": _round(self.cv[r["id"]]), "source": r.get("source"),
                                       "meta": r.get("meta")})
            noisy[r["id"]] = p
        self.Y_s, self.w_s = _noisy_handling(cfg, self.seed_rows, self.Y_seed, self.w_seed, noisy)  # seed rows only

    def pseudo_label(self) -> None:
        """The distilled student labels (a sample of) the unlabelled rows the teacher was not asked about and
        learns them too, ``pseudo_label`` times (:func:`fit_pseudo_labelled`)."""
        cfg, task, t0 = self.cfg, self.task, time.perf_counter()
        if not cfg.pseudo_label:
            return
        taken = set(self.asked) | {m for m, _ in self.inherit}
        rest = [i for i in range(len(self.unl)) if i not in taken]
        rest = [rest[j] for j in calibrate.sample_idx(len(rest), cfg.pseudo_max, cfg.seed + 5)]
        rows = _teacher_rows(task, cfg, self.targets, self.unl, self.asked, self.P_raw_asked, self.A_asked,
                             self.inherit)
        if not rest or not len(rows[1]):  # nothing to label, or no teacher answer to learn from
            return
        self.distilled = fit_pseudo_labelled(task, cfg, self.distilled, self.seed_texts, self.Y_s, self.w_s, rows,
                                             [task.view(self.unl[i]) for i in rest])
        self.pseudo_labelled = len(rest)
        self.timings["pseudo_label"] = time.perf_counter() - t0
        info(f"pseudo-labelling: the student labelled {self.pseudo_labelled} unasked rows itself, "
             f"{cfg.pseudo_label} round(s)")

    def targets(self, P_raw: np.ndarray, idx: list[int]) -> np.ndarray:
        """What the student learns from the teacher's raw answers for unlabelled rows ``idx``."""
        if self.cfg.targets == "calibrated":
            return self.cal.transform(P_raw)
        if self.cfg.targets == "combined" and len(idx):
            return self.comb.transform(P_raw, self.seed_only.predict_proba(
                [self.task.view(self.unl[i]) for i in idx]))
        return P_raw

    def ask_round(self, teacher, demos, rnd: int, budget: int, folded: set) -> dict:
        """One round: select up to ``budget`` unlabelled rows, ask the teacher, retrain the distilled student."""
        cfg, task, unl = self.cfg, self.task, self.unl
        student = None if rnd == 0 and cfg.strategy in ("random", "dedup") else self.distilled
        sel = selection.select(cfg.strategy, unl, budget, student=student, feature_cfg=dict(task.features),
                               known_texts=self.seed_texts + [task.view(unl[i]) for i in self.asked],
                               seed=cfg.seed + rnd, exclude=folded, normalise=task.view)
        P, A = prompting.ask_rows(teacher, task, demos, [unl[i] for i in sel.ask],
                                  f"teacher: round {rnd + 1}/{cfg.rounds}", cfg.progress,
                                  with_agreement=True)
        base = len(self.asked)
        self.asked += sel.ask
        self.P_raw_asked = np.vstack([self.P_raw_asked, P])
        self.A_asked = np.concatenate([self.A_asked, A])
        for pos, rep in enumerate(sel.ask):
            for m in sel.members.get(rep, []):
                self.inherit.append((m, base + pos))
        folded |= {selection._fold(unl[i]["text"]) for i in sel.ask}
        folded |= {selection._fold(unl[m]["text"]) for rep in sel.ask for m in sel.members.get(rep, [])}
        self.distilled = _fit_round(task, cfg, self.targets, self.seed_texts, self.Y_s, self.w_s, unl, self.asked,
                                    self.P_raw_asked, self.A_asked, self.inherit)
        return {"round": rnd + 1, "asked": len(sel.ask), "teacher_calls": len(self.asked),
                "inherited": sum(len(sel.members.get(a, [])) for a in sel.ask),
                "select_seconds": round(sel.seconds, 3), "metrics": _curve_point(task, self.distilled, self.eval_sets)}

    def ask_evaluation_rows(self, teacher, demos) -> None:
        """The teacher on a class-balanced sample of each evaluation set, for its rows in the comparison."""
        cfg, task = self.cfg, self.task
        for name, rows in (("dev", self.dev), ("heldout", self.heldout)):
            if rows and cfg.teacher_eval:
                idx = calibrate.balanced_idx(np.array([r["label"] == task.positive for r in rows]), cfg.teacher_eval,
                                             cfg.seed + 2)
                Pt = prompting.ask_rows(teacher, task, demos, [rows[i] for i in idx],
                                        f"teacher: {name} rows (evaluation)", cfg.progress)
                self.teacher_eval[name] = (idx, self.cal.transform(Pt), Pt)

    def evaluate(self) -> None:
        """Seed-only and distilled students on every evaluation set; the teacher (and teacher with the seed-only
        student) on its sample of it, with both students on exactly those rows; thresholds chosen on dev."""
        task, t0 = self.task, time.perf_counter()
        for name, rows in (("dev", self.dev), ("heldout", self.heldout)):
            if rows:
                self.metrics[name] = self._evaluate_set(name, rows)
        self.timings["evaluate"] = time.perf_counter() - t0
        thresholds = {}
        if self.dev:  # high-confidence: FPR <= 1e-3; best guess: best F1
            y = np.array([r["label"] == task.positive for r in self.dev], dtype=int)
            s = self.distilled.predict_proba([task.view(r) for r in self.dev])[:, task.pos_index]
            if 0 < y.sum() < len(y):
                thresholds = {"high_confidence": E.threshold_at_fpr(y, s, 1e-3), "best_guess": E.best_f1_threshold(y, s)}
        thresholds.setdefault("best_guess", 0.5)
        thresholds.setdefault("high_confidence", 0.9)
        self.thresholds = thresholds

    def _evaluate_set(self, name: str, rows: list[dict]) -> dict:
        task = self.task
        txt = [task.view(r) for r in rows]
        ylab = [r["label"] for r in rows]
        src = [r.get("source", "") for r in rows]
        m = {"seed_only": E.evaluate(task.labels, task.positive, ylab, self.seed_only.predict_proba(txt), src),
             "distilled": E.evaluate(task.labels, task.positive, ylab, self.distilled.predict_proba(txt), src)}
        if name not in self.teacher_eval:
            return m
        idx, Pt, Pt_raw = self.teacher_eval[name]
        sub = idx[~np.isnan(Pt).any(axis=1)]
        okt = ~np.isnan(Pt).any(axis=1)
        m["teacher"] = E.evaluate(task.labels, task.positive, [ylab[i] for i in sub], Pt[okt], [src[i] for i in sub])
        Pc = self.comb.transform(Pt_raw[okt], self.seed_only.predict_proba([txt[i] for i in sub]))
        m["teacher_student"] = E.evaluate(task.labels, task.positive, [ylab[i] for i in sub], Pc, [src[i] for i in sub])
        for s_name, s in (("seed_only", self.seed_only), ("distilled", self.distilled)):  # like for like
            m[s_name + "_on_teacher_rows"] = E.binary_metrics(
                np.array([ylab[i] == task.positive for i in sub]), s.predict_proba([txt[i] for i in sub])[:, task.pos_index])
        return m

    def save(self) -> TrainResult:
        """The model folder: both students, the teacher's labels, the disagreements and the manifest."""
        cfg, task, out, unl = self.cfg, self.task, self.out, self.unl
        out.mkdir(parents=True, exist_ok=True)
        n_teacher = int((~np.isnan(self.P_raw_asked).any(axis=1)).sum()) if len(self.P_raw_asked) else 0
        if cfg.teacher:
            P_c = self.cal.transform(self.P_raw_asked)
            D.write_jsonl(out / "teacher_labels.jsonl",
                          ({"id": unl[i]["id"], "text": unl[i]["text"], "probs": _round(p), "raw": _round(q),
                            "agreement": round(float(g), 4)}
                           for i, p, q, g in zip(self.asked, P_c, self.P_raw_asked, self.A_asked) if not np.isnan(q).any()))
            D.write_jsonl(out / "disagreements.jsonl", self.disagreements)
        meta = {"task": task.to_dict(), "thresholds": self.thresholds,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "trained_on": {"seed_rows": len(self.seed_rows), "synthetic_rows": len(self.synthetic),
                               "lent_link_rows": len(self.lent),
                               "teacher_rows": n_teacher, "inherited_rows": len(self.inherit),
                               "pseudo_labelled_rows": self.pseudo_labelled}}
        modelfile.save(self.distilled, out, meta)
        modelfile.save(self.seed_only, out / "seed_only",
                       meta | {"trained_on": {"seed_rows": len(self.seed_rows), "teacher_rows": 0}})
        inputs = {p: input_digest(p) for p in cfg.input_paths()}
        manifest = {"smallworld": __import__("smallworld").__version__, "config": asdict(cfg), "inputs": inputs,
                    "counts": {"seed": len(self.seed_rows), "synthetic": len(self.synthetic), "lent_links": len(self.lent),
                               "unlabelled": len(unl),
                               "chosen": len(self.asked), "teacher_labelled": n_teacher, "inherited": len(self.inherit),
                               "pseudo_labelled": self.pseudo_labelled, "dev": len(self.dev), "heldout": len(self.heldout),
                               "disagreements": len(self.disagreements), "skipped_rows": self.stats.skipped,
                               "skipped_reasons": self.stats.reasons},
                    "teacher": self.teacher_info, "metrics": self.metrics, "thresholds": self.thresholds,
                    "timings": {k: round(v, 3) for k, v in self.timings.items()},
                    "artifacts": {str(p.relative_to(out)): sha256_file(str(p)) for p in sorted(out.rglob("*"))
                                  if p.is_file() and p.name != "manifest.json"} | {"manifest.json": None}}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return TrainResult(out, manifest)


def train(cfg: TrainConfig) -> TrainResult:
    """Run every stage of a training run (:class:`Trainer`)."""
    return Trainer(cfg).run()


def _paths(p: str | list[str]) -> list[str]:
    return list(p) if isinstance(p, (list, tuple)) else [p]


def input_digest(path: str) -> dict:
    """What the manifest records of an input: a file's sha256; a directory's sha256 over its readable files'
    names and digests (and how many); standard input is recorded as such (it cannot be read twice)."""
    if path == "-":
        return {"stdin": True}
    p = Path(path)
    if p.is_dir():
        h, n = hashlib.sha256(), 0
        for f in sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(D.TEXT_EXT)):
            h.update(f"{f.relative_to(p)}\0{sha256_file(str(f))}\n".encode())
            n += 1
        return {"sha256": h.hexdigest(), "files": n}
    return {"sha256": sha256_file(path)}


def _curve_point(task: Task, student, eval_sets: dict) -> dict:
    """The student's ROC AUC and TPR at 1e-3 FPR on each evaluation set: one point of a learning curve."""
    out = {}
    for name, (txt, y) in eval_sets.items():
        m = E.binary_metrics(y, student.predict_proba(txt)[:, task.pos_index])
        out[name] = {"roc_auc": m["roc_auc"], "tpr_at_1e-3": m["tpr_at_fpr"]["0.001"]}
    return out


def _round(p) -> list[float]:
    return [round(float(x), 6) for x in p]


def _counts(rows) -> str:
    c: dict[str, int] = {}
    for r in rows:
        c[r["label"]] = c.get(r["label"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))


def comparison_table(manifest: dict) -> str:
    """The three rows side by side (teacher, seed-only, distilled) for each evaluation set, as text."""
    lines = []
    for name, m in manifest.get("metrics", {}).items():
        lines.append(f"{name}:")
        lines.append(f"  {'model':<15} {'n':>6} {'ROC AUC':>8} {'PR AUC':>8} {'TPR@1e-3':>9} {'TPR@1e-2':>9} {'ECE':>6}")
        for row in ("teacher", "teacher_student", "seed_only", "distilled"):
            if row in m:
                x = m[row]
                lines.append(f"  {row:<15} {x['n']:>6} {_f(x.get('roc_auc'))} {_f(x.get('pr_auc'))} "
                             f"{_f(x['tpr_at_fpr'].get('0.001'), 9)} {_f(x['tpr_at_fpr'].get('0.01'), 9)} {_f(x.get('ece'), 6)}")
        if "seed_only_on_teacher_rows" in m:
            a, b = m["seed_only_on_teacher_rows"], m["distilled_on_teacher_rows"]
            lines.append(f"  on the teacher's {a['n']} rows: seed-only {_f(a.get('roc_auc'), 0).strip()}, "
                         f"distilled {_f(b.get('roc_auc'), 0).strip()}")
    return "\n".join(lines)


def _f(x, w=8) -> str:
    return f"{'-':>{w}}" if x is None else f"{x:>{w}.3f}"
