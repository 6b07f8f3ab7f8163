"""Tasks: label sets, prompts, normalisers and student feature settings, defined as TOML data.

Built-in tasks live beside this file (``cmdlines.toml``, ``urls.toml``, ``emails.toml``, ``html.toml``);
a user adds a task by writing the same keys in their own TOML file and passing its path as ``--task``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SmallworldError

_HERE = Path(__file__).parent
BUILTIN = ("cmdlines", "urls", "emails", "html")
# event fields of an endpoint log's row (smallworld.logs) a task may show its models, with the words they are shown under
CONTEXT_CHARS = 200  # of each field (a parent's command line can be long; the item's own text comes first)
CONTEXT_FIELDS = {"image": "process", "parent_image": "parent", "parent_command_line": "parent command line",
                  "user": "user"}

_EMAIL_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_CONTEXT_WORD = {v: k for k, v in CONTEXT_FIELDS.items()}


def split_item(item: str) -> tuple[str, dict]:
    """The inverse of :meth:`Task.item` for a task with ``context``: the text (the first line) and the event's
    fields (the lines after it, ``process: ...``). Exact, because such a task's items hold no other line break."""
    head, *lines = item.split("\n")
    event = {}
    for line in lines:
        word, sep, value = line.partition(": ")
        if sep and word in _CONTEXT_WORD and _CONTEXT_WORD[word] not in event:
            event[_CONTEXT_WORD[word]] = value
        else:  # not written by Task.item (a string given as it is): text, as a task without context reads it
            head += " " + line
    return head, event


def _norm_none(text: str) -> str:
    return text


def _norm_lower(text: str) -> str:
    return text.lower()


def _norm_email(text: str) -> str:
    """The corpora's email form: lowercase, punctuation set apart by spaces (Enron-Spam's tokenisation)."""
    return " ".join(_EMAIL_TOKEN.findall(text.lower()))


def _norm_email_view(text: str) -> str:
    from .mail import email_view

    return email_view(text)


def _norm_email_intent(text: str) -> str:
    from .mail import email_intent_view

    return email_intent_view(text)


def _norm_email_signals(text: str) -> str:
    from .mail import email_signals_view

    return email_signals_view(text)


def _norm_url(text: str) -> str:
    from .url import url_view

    return url_view(text)


def _norm_html(text: str) -> str:
    from .page import page_view

    return page_view(text)


def _norm_cmdline(text: str) -> str:
    from .cmdline import cmdline_view

    return cmdline_view(text)


def _norm_cmdline_context(item: str) -> str:
    from .cmdline import cmdline_context_view

    return cmdline_context_view(*split_item(item))


def _clean_cmdline(text: str) -> str:
    from .cmdline import clean

    return clean(text)


NORMALISERS = {"none": _norm_none, "lower": _norm_lower, "email": _norm_email, "email_view": _norm_email_view,
               "email_intent": _norm_email_intent, "email_signals": _norm_email_signals, "url_signals": _norm_url,
               "html": _norm_html, "cmdline": _norm_cmdline}
# Each view's version: raised when a normaliser's output changes, so that a model trained on the old view is
# refused (retrain it) rather than scored on features it never learnt. Unlisted views are version 1.
# cmdline 2: the first program's folder and .exe dropped; email_intent 2: the secrecy and personal-data cues;
# email_signals 2: those cues, and the feature tokens written 5 times (docs/experiments.md)
VIEW_VERSIONS = {"cmdline": 2, "email_intent": 2, "email_signals": 2}
# Views that read a task's ``context`` as fields of their own (words apart from the text's) rather than as more text;
# the version is raised when what they make of the fields changes (2: the cmdline view's context words).
CONTEXT_NORMALISERS = {"cmdline": _norm_cmdline_context}
CONTEXT_VIEW_VERSION = 2
# What the teacher is shown, where it differs from the student's view (the student's extra feature words are
# for hashing, not for reading).
PROMPT_VIEWS = {"cmdline": _clean_cmdline, "email_signals": _norm_email_intent, "url_signals": _norm_none}
MIN_ITEM_CHARS, MAX_ITEM_CHARS = 20, 1_000_000  # the prompt's budget for one item (see prompt.neutralise)


PROMPT_MODES = ("hybrid", "similar", "fixed", "zero")
# training options a task may set a default for (its [train] table), with the default where it sets none; a CLI flag,
# a run config's [train] key or the Python API wins over both
TRAIN_DEFAULTS = {"alpha": 1.0, "pseudo_label": 0}


def prompt_modes(mode: str) -> list[str]:
    """The modes of a prompt setting: one of PROMPT_MODES, or an ensemble of several joined by '+'."""
    parts = mode.split("+") if isinstance(mode, str) else [None]
    if any(m not in PROMPT_MODES for m in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"prompt mode must be one of {PROMPT_MODES}, or several joined by '+' (each once), "
                         f"not {mode!r}")
    return parts


@dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...]
    positive: str
    field: str
    question: str
    answers: dict[str, str]
    instruction: str
    rubric: str = ""
    normaliser: str = "none"
    max_item_chars: int = 600
    features: dict = field(default_factory=dict)
    prompt: str = "hybrid"   # the teacher's default prompt: hybrid | similar | fixed | zero, or an ensemble a+b
    context: tuple = ()      # the event fields (endpoint logs) the models see beside the text: see CONTEXT_FIELDS
    train: dict = field(default_factory=dict)  # this task's defaults for the options in TRAIN_DEFAULTS

    def __post_init__(self):
        if len(self.labels) < 2:
            raise SmallworldError(f"task {self.name!r}: needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise SmallworldError(f"task {self.name!r}: labels {list(self.labels)} are not all different")
        if self.positive not in self.labels:
            raise SmallworldError(f"task {self.name!r}: positive label {self.positive!r} is not among {list(self.labels)}")
        missing = [lab for lab in self.labels if lab not in self.answers]
        if missing:
            raise SmallworldError(f"task {self.name!r}: no answer word for labels {missing}")
        # answer words are read from the teacher's first answer token: each must be told apart from the others
        words = [self.answers[lab].strip().lower() for lab in self.labels]
        for i, w in enumerate(words):
            if not w:
                raise SmallworldError(f"task {self.name!r}: the answer word for {self.labels[i]!r} is empty")
            for j, o in enumerate(words):
                if i != j and o.startswith(w):
                    raise SmallworldError(f"task {self.name!r}: answer words {self.answers[self.labels[i]]!r} and "
                                          f"{self.answers[self.labels[j]]!r} cannot be told apart (one begins the other)")
        for key in ("field", "question"):  # the prompt's item and answer lines: one line each
            v = getattr(self, key)
            if not v.strip() or any(c in v for c in "\r\n\x85\u2028\u2029") or len(v) > 200:
                raise SmallworldError(f"task {self.name!r}: {key} must be one non-empty line of at most 200 characters")
        bad = [c for c in self.context if c not in CONTEXT_FIELDS]
        if bad or len(set(self.context)) != len(self.context):
            raise SmallworldError(f"task {self.name!r}: context must be distinct fields of {list(CONTEXT_FIELDS)}; got {bad or list(self.context)}")
        if self.normaliser not in NORMALISERS:
            raise SmallworldError(f"task {self.name!r}: unknown normaliser {self.normaliser!r}; one of {sorted(NORMALISERS)}")
        if not MIN_ITEM_CHARS <= self.max_item_chars <= MAX_ITEM_CHARS:
            raise SmallworldError(f"task {self.name!r}: max_item_chars must be between {MIN_ITEM_CHARS} and {MAX_ITEM_CHARS}")
        try:
            prompt_modes(self.prompt)
        except ValueError as e:
            raise SmallworldError(f"task {self.name!r}: {e}") from None
        for k, v in self.train.items():
            if k not in TRAIN_DEFAULTS:
                raise SmallworldError(f"task {self.name!r}: [train] {k!r} is not an option a task sets; "
                                      f"one of {sorted(TRAIN_DEFAULTS)}")
            want = type(TRAIN_DEFAULTS[k])
            ok = isinstance(v, (int, float) if want is float else int) and not isinstance(v, bool)
            if not ok or v < 0 or v != v or v == float("inf"):
                raise SmallworldError(f"task {self.name!r}: [train] {k} must be a "
                                      f"{'number' if want is float else 'whole number'} of 0 or more, not {v!r}")
        from ..student import features

        try:
            features.config(self.features)
        except (TypeError, ValueError, OverflowError) as e:
            raise SmallworldError(f"task {self.name!r}: invalid [features]: {e}") from None

    @property
    def pos_index(self) -> int:
        return self.labels.index(self.positive)

    def normalise(self, text: str) -> str:
        """The student's view of an item (what is hashed): for a task with ``context`` whose view reads the event's
        fields (``CONTEXT_NORMALISERS``), the text's view and the fields' words apart."""
        fn = CONTEXT_NORMALISERS.get(self.normaliser) if self.context else None
        return (fn or NORMALISERS[self.normaliser])(text)

    def item(self, row: dict | str) -> str:
        """A row as the models see it: its text and, for a task with ``context``, the event's fields it names
        (an endpoint log's process image, parent, parent command line, user), a line each; the text and each field
        are then one line (line breaks become spaces), so that :func:`split_item` reads them back exactly and no
        command line can pose as its own parent. A string is itself."""
        if isinstance(row, str):
            return row
        if not self.context:
            return row["text"]
        ev = row.get("event")
        text = _LINE_BREAKS.sub(" ", row["text"])
        if not isinstance(ev, dict):
            return text
        return text + "".join(f"\n{CONTEXT_FIELDS[k]}: {_LINE_BREAKS.sub(' ', str(ev[k]))[:CONTEXT_CHARS]}"
                              for k in self.context if ev.get(k))

    def view(self, row: dict | str) -> str:
        """The student's view of a row: :meth:`normalise` of :meth:`item`."""
        return self.normalise(self.item(row))

    def prompt_view(self, text: str) -> str:
        """The teacher's view of an item (what the prompt shows)."""
        return PROMPT_VIEWS.get(self.normaliser, NORMALISERS[self.normaliser])(text)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "labels": list(self.labels), "positive": self.positive, "field": self.field,
            "question": self.question, "answers": dict(self.answers), "instruction": self.instruction,
            "rubric": self.rubric, "normaliser": self.normaliser, "max_item_chars": self.max_item_chars,
            "features": dict(self.features), "prompt": self.prompt, "context": list(self.context),
            "train": dict(self.train), "view_version": {self.normaliser: VIEW_VERSIONS.get(self.normaliser, 1)}
            | ({"context": CONTEXT_VIEW_VERSION} if self.context and self.normaliser in CONTEXT_NORMALISERS else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        if not isinstance(d, dict):
            raise SmallworldError(f"task definition: expected a table of keys, got {type(d).__name__}")
        known = {"name", "labels", "positive", "field", "question", "answers", "instruction", "rubric",
                 "normaliser", "max_item_chars", "features", "prompt", "context", "train", "view_version"}
        unknown = set(d) - known
        if unknown:
            raise SmallworldError(f"task definition: unknown keys {sorted(map(str, unknown))}")
        for key in ("name", "labels", "positive", "answers"):
            if key not in d:
                raise SmallworldError(f"task definition: missing key {key!r}")

        def text(key: str, default: str | None = None) -> str:
            v = d.get(key, default)
            if not isinstance(v, str):
                raise SmallworldError(f"task definition: {key!r} must be a string, not {type(v).__name__}")
            return v

        labels, answers, feats = d["labels"], d["answers"], d.get("features", {})
        rubric = text("rubric", "")
        if isinstance(labels, dict):  # label = "description": the descriptions join the rubric
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                raise SmallworldError("task definition: a 'labels' table must map label names to descriptions (strings)")
            described = "\n".join(f"{k}: {v}" for k, v in labels.items() if v.strip())
            rubric = "\n".join(x for x in (rubric, described) if x)
            labels = list(labels)
        if not (isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)):
            raise SmallworldError("task definition: 'labels' must be a list of strings or a table of label = \"description\"")
        if not (isinstance(answers, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in answers.items())):
            raise SmallworldError("task definition: 'answers' must be a table of label = \"answer word\" strings")
        if not isinstance(feats, dict):
            raise SmallworldError("task definition: 'features' must be a table")
        train = d.get("train", {})
        if not isinstance(train, dict):
            raise SmallworldError("task definition: 'train' must be a table")
        ctx = d.get("context", [])
        if not (isinstance(ctx, (list, tuple)) and all(isinstance(c, str) for c in ctx)):
            raise SmallworldError("task definition: 'context' must be a list of event field names")
        mic = d.get("max_item_chars", 600)
        if isinstance(mic, bool) or not isinstance(mic, int):
            raise SmallworldError(f"task definition: 'max_item_chars' must be an integer, not {type(mic).__name__}")
        norm = text("normaliser", "none")
        vv = d.get("view_version", {})  # {normaliser: version}: the entry for another normaliser is not this view's
        if not isinstance(vv, dict):
            raise SmallworldError("task definition: 'view_version' must be a table of normaliser = version")
        cur = VIEW_VERSIONS.get(norm, 1)
        if vv.get(norm, cur) != cur:
            raise SmallworldError(f"trained on version {vv[norm]!r} of the {norm!r} view; this smallworld has version "
                                  f"{cur} (its features changed): retrain the model")
        # a model.json from before the context words has a view_version without "context": version 1
        cv = vv.get("context", 1 if vv else CONTEXT_VIEW_VERSION)
        if ctx and norm in CONTEXT_NORMALISERS and cv != CONTEXT_VIEW_VERSION:
            raise SmallworldError(f"trained on version {cv!r} of the {norm!r} view's context (the event's fields); "
                                  f"this smallworld has version {CONTEXT_VIEW_VERSION}: retrain the model")
        return cls(name=text("name"), labels=tuple(labels), positive=text("positive"), field=text("field", "Item"),
                   question=text("question", "Label"), answers=dict(answers), instruction=text("instruction", ""),
                   rubric=rubric, normaliser=norm, max_item_chars=mic,
                   features=dict(feats), prompt=text("prompt", "hybrid"), context=tuple(ctx), train=dict(train))


def load_task(name_or_path: str | Path | dict) -> Task:
    """A built-in task by name, a task defined in a TOML file, or a task table (a run config's ``[task]``)."""
    if isinstance(name_or_path, dict):
        return Task.from_dict(name_or_path)
    s = str(name_or_path)
    if s in BUILTIN:
        path = _HERE / f"{s}.toml"
    else:
        path = Path(s)
        if not path.is_file():
            raise SmallworldError(f"unknown task {s!r}: not one of {list(BUILTIN)} and no such TOML file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # TOMLDecodeError, and integers past Python's digit limit
        raise SmallworldError(f"{path}: not a valid task TOML file: {e}") from None
    except RecursionError:
        raise SmallworldError(f"{path}: not a valid task TOML file: nested too deeply") from None
    if "task" in data and isinstance(data["task"], dict):  # a run config's [task] table
        data = data["task"]
    return Task.from_dict(data)
