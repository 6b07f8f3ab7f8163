"""Score a Spark DataFrame with a saved student: ``mapInArrow``, the model shipped once as a broadcast.

The driver reads the model's files (``model.json`` and ``weights.bin``, or ``model.onnx`` for a char-CNN: a few MB), checks them by loading
them, and broadcasts their bytes; each Python worker process loads them once (the same validated
:func:`smallworld.student.modelfile.load`, from a private temporary copy) and keeps the
:class:`~smallworld.student.model.Model` for every later task and Arrow batch. Scores are the Model's, so
they equal ``smallworld score``'s. The workers need smallworld installed (its wheel, or a packed venv).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Optional

from ..choices import MODES
from ..errors import SmallworldError
from ..student.model import Model

MODEL_FILES = {"linear": ("model.json", "weights.bin"), "char_cnn": ("model.json", "model.onnx")}  # by family

_loaded: dict[str, Model] = {}  # per worker process: weights sha256 -> Model


def _worker_scorer(key: str, files) -> Model:
    sc = _loaded.get(key)
    if sc is None:
        with tempfile.TemporaryDirectory(prefix="smallworld-model-") as d:
            for name, blob in files.value.items():
                (Path(d) / name).write_bytes(blob)
            sc = Model(d)  # loads everything into memory; the copy goes with the directory
        _loaded[key] = sc
    return sc


def score_dataframe(df, model_dir: str | Path, text_col: str = "text", out_col: str = "score",
                    decision_col: Optional[str] = None, mode: str = "best_guess"):
    """``df`` with ``out_col`` (double, P(positive); null where the text is null) and, if ``decision_col``
    is given, the decision at the ``mode`` threshold (as ``smallworld score --mode``). Lazy, like any
    DataFrame transformation; other columns and the partitioning are kept."""
    import pyarrow as pa
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    if mode not in MODES:
        raise SmallworldError(f"mode must be one of {list(MODES)}, not {mode!r}")
    fields = {f.name: f for f in df.schema.fields}
    if text_col not in fields:
        raise SmallworldError(f"no column {text_col!r} to score (columns: {list(fields)})")
    if not isinstance(fields[text_col].dataType, StringType):
        raise SmallworldError(f"column {text_col!r} is {fields[text_col].dataType.simpleString()}, not string")
    new = [c for c in (out_col, decision_col) if c]
    if any(c in fields for c in new) or len(set(new)) < len(new):
        raise SmallworldError(f"output columns {new} must be new and distinct (columns: {list(fields)})")

    scorer = Model(model_dir)  # fail here, on the driver, with a clear error, not in every task
    blobs = {n: (Path(model_dir) / n).read_bytes() for n in MODEL_FILES[scorer.family]}
    key = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blobs.values())).hexdigest()
    files = df.sparkSession.sparkContext.broadcast(blobs)
    out_fields = [StructField(out_col, DoubleType(), True)]
    if decision_col:
        out_fields.append(StructField(decision_col, StringType(), True))
    schema = StructType(list(df.schema.fields) + out_fields)
    names = [f.name for f in schema.fields]

    def score_batches(batches):
        sc = _worker_scorer(key, files)
        for batch in batches:
            texts = batch.column(text_col).to_pylist()
            keep = [i for i, t in enumerate(texts) if t is not None]
            S, _, D = sc.decide([texts[i] for i in keep], mode)
            scores, decisions = [None] * len(texts), [None] * len(texts)
            for j, i in enumerate(keep):
                scores[i], decisions[i] = float(S[j]), D[j]
            cols = list(batch.columns) + [pa.array(scores, pa.float64())]
            if decision_col:
                cols.append(pa.array(decisions, pa.string()))
            yield pa.RecordBatch.from_arrays(cols, names=names)

    return df.mapInArrow(score_batches, schema)
