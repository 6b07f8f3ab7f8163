"""The Python API's two verbs, on the same cores as the CLI: :func:`train` (``smallworld train``) and
:func:`label` (``smallworld label``). ``smallworld.load`` is :func:`smallworld.student.model.load`."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Iterable

from . import data as D
from .errors import SmallworldError
from .labeller import LabelResult, label_rows
from .pipeline import TrainConfig, TrainResult, train as run_train
from .tasks import Task, load_task

_TRAIN_OPTIONS = {f.name for f in fields(TrainConfig)}


def train(config: TrainConfig | None = None, **options) -> TrainResult:
    """Distil a teacher into a student: the options of ``smallworld train`` as keywords (``task``, ``labelled``,
    ``out``, ``unlabelled=[...]``, ``budget``, ``strategy``, ``prompt``, ...; see :class:`TrainConfig`), or a
    ready :class:`TrainConfig`. Writes the model directory ``out`` and returns a :class:`TrainResult`."""
    if config is None:
        unknown = sorted(set(options) - _TRAIN_OPTIONS)
        if unknown:
            raise SmallworldError(f"train: unknown options {unknown}; known: {sorted(_TRAIN_OPTIONS)}")
        if isinstance(options.get("unlabelled"), (str, Path)):
            options["unlabelled"] = [options["unlabelled"]]
        config = TrainConfig(**options)
    elif options:
        raise SmallworldError("train: pass a TrainConfig or keyword options, not both")
    return run_train(config)


def _rows(items, what: str) -> list[dict]:
    """Rows from a path, a list of texts, or a list of row dicts (``text``, optional ``id`` and ``label``)."""
    if isinstance(items, (str, Path)):
        return D.read_rows(items)
    rows = []
    for i, x in enumerate(items):
        if isinstance(x, str):
            rows.append({"id": str(i + 1), "text": x})
        elif isinstance(x, dict) and isinstance(x.get("text"), str):
            rows.append({"id": str(x.get("id", i + 1)), **{k: v for k, v in x.items() if k != "id"}})
        else:
            raise SmallworldError(f"{what}: item {i + 1} is neither a string nor a row with a 'text' string")
    return rows


def label(items: Iterable | str | Path, task: str | Task = "cmdlines", teacher="embedded",
          labelled: Iterable | str | Path | None = None, **options) -> LabelResult:
    """Label texts (a list of strings or rows, or a file) with the teacher, as ``smallworld label`` does.
    ``teacher``: ``"embedded"``, an OpenAI-compatible base URL, or a teacher object; ``labelled``: a seed (file
    or rows) for demonstrations, calibration and the students. Options: ``prompt``, ``rubric``, ``shots``,
    ``calibration``, ``combine``, ``combine_rule``, ``self_train``; teacher options (``cache_path``, ``model``,
    ``timeout`` ...) go in ``teacher_options={...}``."""
    from .teacher import make_teacher

    t = task if isinstance(task, Task) else load_task(task)
    rows = _rows(items, "items")
    seed = [r for r in _rows(labelled, "labelled") if "label" in r] if labelled is not None else []
    if seed:
        D.check_labels(seed, t.labels, "labelled")
    teacher_options = options.pop("teacher_options", {})
    own = isinstance(teacher, str)
    te = make_teacher(teacher, **teacher_options) if own else teacher
    try:
        return label_rows(t, rows, te, seed, **options)
    finally:
        if own:
            te.close()
