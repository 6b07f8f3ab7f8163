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

_EMAIL_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _norm_none(text: str) -> str:
    return text


def _norm_lower(text: str) -> str:
    return text.lower()


def _norm_email(text: str) -> str:
    """The corpora's email form: lowercase, punctuation set apart by spaces (Enron-Spam's tokenisation)."""
    return " ".join(_EMAIL_TOKEN.findall(text.lower()))


NORMALISERS = {"none": _norm_none, "lower": _norm_lower, "email": _norm_email}


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

    def __post_init__(self):
        if len(self.labels) < 2:
            raise SmallworldError(f"task {self.name!r}: needs at least two labels")
        if self.positive not in self.labels:
            raise SmallworldError(f"task {self.name!r}: positive label {self.positive!r} is not among {list(self.labels)}")
        missing = [lab for lab in self.labels if lab not in self.answers]
        if missing:
            raise SmallworldError(f"task {self.name!r}: no answer word for labels {missing}")
        if self.normaliser not in NORMALISERS:
            raise SmallworldError(f"task {self.name!r}: unknown normaliser {self.normaliser!r}; one of {sorted(NORMALISERS)}")

    @property
    def pos_index(self) -> int:
        return self.labels.index(self.positive)

    def normalise(self, text: str) -> str:
        return NORMALISERS[self.normaliser](text)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "labels": list(self.labels), "positive": self.positive, "field": self.field,
            "question": self.question, "answers": dict(self.answers), "instruction": self.instruction,
            "rubric": self.rubric, "normaliser": self.normaliser, "max_item_chars": self.max_item_chars,
            "features": dict(self.features),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        known = {"name", "labels", "positive", "field", "question", "answers", "instruction", "rubric",
                 "normaliser", "max_item_chars", "features"}
        unknown = set(d) - known
        if unknown:
            raise SmallworldError(f"task definition: unknown keys {sorted(unknown)}")
        try:
            return cls(
                name=str(d["name"]), labels=tuple(str(x) for x in d["labels"]), positive=str(d["positive"]),
                field=str(d.get("field", "Item")), question=str(d.get("question", "Label")),
                answers={str(k): str(v) for k, v in d["answers"].items()},
                instruction=str(d.get("instruction", "")), rubric=str(d.get("rubric", "")),
                normaliser=str(d.get("normaliser", "none")), max_item_chars=int(d.get("max_item_chars", 600)),
                features=dict(d.get("features", {})),
            )
        except KeyError as e:
            raise SmallworldError(f"task definition: missing key {e.args[0]!r}") from None


def load_task(name_or_path: str | Path) -> Task:
    """A built-in task by name, or a task defined in a TOML file."""
    s = str(name_or_path)
    if s in BUILTIN:
        path = _HERE / f"{s}.toml"
    else:
        path = Path(s)
        if not path.is_file():
            raise SmallworldError(f"unknown task {s!r}: not one of {list(BUILTIN)} and no such TOML file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SmallworldError(f"{path}: not a valid task TOML file: {e}") from None
    if "task" in data and isinstance(data["task"], dict):  # a run config's [task] table
        data = data["task"]
    return Task.from_dict(data)
