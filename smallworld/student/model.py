"""The model object: a saved student directory loaded for scoring (``smallworld.load(dir)``).

One class under every door: ``smallworld score``, ``serve``, Spark, ``evaluate``, ``explain`` and the Python
API all score through :class:`Model`, in the scikit-learn idiom: ``predict_proba(texts)`` (one column per label,
in ``labels`` order), ``predict(texts)`` (labels, by the model's decision threshold), ``explain(text)``. Items are
put in the task's view (its normaliser) first, exactly as in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..choices import MODES
from ..errors import ModelFileError, SmallworldError
from ..tasks import Task
from . import features, modelfile



def _thresholds(t, model_dir) -> dict:
    """Decision thresholds from model.json: finite numbers in [0, 1]; defaults where absent."""
    out = {"best_guess": 0.5, "high_confidence": 0.9}
    if t is None:
        return out
    if not isinstance(t, dict):
        raise ModelFileError(f"{model_dir}/model.json: 'thresholds' must be a table of numbers")
    for k, v in t.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
            raise ModelFileError(f"{model_dir}/model.json: threshold {k!r} must be a number in [0, 1], not {v!r}")
        out[str(k)] = float(v)
    return out


@dataclass(frozen=True)
class Explanation:
    """Why the model scored an item as it did: per-feature contributions to the positive class's margin."""
    text: str                       # the item as the model saw it (the task's view)
    probability: float              # P(positive)
    margin: float                   # bias + sum of contributions
    bias: float
    n_features: int
    toward: list[tuple[str, float]]   # features pushing toward the positive class, strongest first
    against: list[tuple[str, float]]  # features pushing away from it
    top_abs: list[tuple[str, float]]  # the largest contributions either way
    probs: list[float]                # every class's probability, in the model's label order

    def to_dict(self) -> dict:
        return {"text": self.text, "probability": self.probability, "probs": self.probs, "margin": self.margin,
                "bias": self.bias, "n_features": self.n_features, "toward": self.toward, "against": self.against,
                "top_abs": self.top_abs}


class Model:
    """A loaded model directory. ``predict_proba(texts)`` gives every class's probability, ``scores(texts)``
    P(positive), ``predict(texts, mode)`` the decisions, ``explain(text)`` the features behind a score."""

    def __init__(self, model_dir: str | Path):
        self.path = Path(model_dir)
        self.model, self.header = modelfile.load(model_dir)
        t = self.header.get("task")
        try:
            # a model.json from before views were versioned was written for version 1 of its view
            norm = t.get("normaliser", "none") if isinstance(t, dict) else None
            if isinstance(norm, str) and "view_version" not in t:
                t = {**t, "view_version": {norm: 1}}
            self.task = Task.from_dict(t) if isinstance(t, dict) else None
        except SmallworldError as e:
            raise ModelFileError(f"{model_dir}/model.json: invalid task definition: {e}") from None
        self.labels = tuple(self.header["labels"])
        pos = (self.task.positive if self.task else self.labels[0])
        self.pos = self.labels.index(pos)
        self.positive = self.labels[self.pos]
        self.thresholds = _thresholds(self.header.get("thresholds"), model_dir)
        # two classes: one weight column (w_pos - w_neg) and one bias
        # (a CNN model, family char_cnn, scores through its own predict_proba: onnxruntime)
        self.family = getattr(self.model, "family", "linear")
        self.binary = (features.binary_weights(self.model.W, self.model.b, self.pos)
                       if len(self.labels) == 2 and self.family == "linear" else None)

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, task={self.task.name if self.task else None!r}, labels={list(self.labels)})"

    @property
    def raw_text(self) -> bool:
        """Whether items are scored as given (no task view): what the bulk plain-lines path needs."""
        return self.task is None or self.task.normaliser == "none"

    def item(self, row: dict) -> str:
        """A row's text as this model reads it (with the event's context where the task shows it)."""
        return self.task.item(row) if self.task else row["text"]

    def view(self, texts: Iterable[str]) -> list[str]:
        """The items as the model sees them (the task's normaliser)."""
        if not self.raw_text:
            return [self.task.normalise(t) for t in texts]
        return texts if isinstance(texts, list) else list(texts)

    def predict_proba(self, texts) -> np.ndarray:
        """(n_items, n_labels) probabilities, columns in ``labels`` order."""
        return self.model.predict_proba(self.view(texts))

    def scores(self, texts) -> np.ndarray:
        """P(positive) per item (for two classes through the fast single-column kernel)."""
        if self.binary is None:
            return self.predict_proba(texts)[:, self.pos]
        return features.binary_probs(self.view(texts), self.model.feature_config, *self.binary)

    def threshold(self, mode: str = "best_guess") -> float:
        if mode not in self.thresholds:
            raise SmallworldError(f"mode must be one of {', '.join(sorted(self.thresholds))}, not {mode!r}")
        return self.thresholds[mode]

    def decide(self, texts: list[str], mode: str = "best_guess"):
        """``(scores, probs, decisions)``: scores are exactly ``scores(texts)``; probs has one column per label
        (for two labels ``[s, 1 - s]`` in label order, no second pass); a decision is the positive label when
        its score reaches the ``mode`` threshold, else the likeliest other label."""
        thr = self.threshold(mode)
        s = self.scores(texts)
        if len(self.labels) == 2:
            P = np.empty((len(s), 2))
            P[:, self.pos], P[:, 1 - self.pos] = s, 1.0 - s
        else:
            P = self.predict_proba(texts)
        return s, P, [self.positive if p >= thr else self.other(row) for p, row in zip(s, P)]

    def other(self, probs_row: np.ndarray) -> str:
        """The likeliest label other than the positive one."""
        q = np.array(probs_row, dtype=float)
        q[self.pos] = -1
        return self.labels[int(np.argmax(q))]

    def predict(self, texts, mode: str = "best_guess") -> list[str]:
        """A label per item: the positive label where P(positive) reaches the ``mode`` threshold (chosen on dev
        when the model was trained), else the likeliest other label."""
        return self.decide(list(texts), mode)[2]

    def explain(self, text: str, top: int = 10) -> Explanation:
        """The n-grams and tokens that pushed the item toward or away from the positive class (linear models)."""
        from .explain import explain

        if self.family != "linear":
            raise SmallworldError(f"{self.path}: explain works with linear models; this one is {self.family}")
        seen = self.view([text])[0]
        e = explain(self.model, seen, self.pos, top)
        return Explanation(text=seen, probability=float(e["probs"][self.pos]), margin=e["margin"], bias=e["bias"],
                           n_features=e["n_features"], toward=e["toward"], against=e["against"],
                           top_abs=e["top_abs"], probs=e["probs"])


def load(model_dir: str | Path) -> Model:
    """Load a model directory (``model.json`` + ``weights.bin``, or ``model.onnx``) for scoring. Runs no code
    from the directory: JSON and numbers only."""
    return Model(model_dir)
