"""The model file: a directory with ``model.json`` (documented metadata) and ``weights.bin`` (raw numbers).

``weights.bin`` holds, little-endian and in this order, the weight matrix W (``dim`` rows x ``K`` columns,
row-major) and the bias vector b (``K``), in ``dtype`` (``float32``, ``float16``, or ``int8`` with one
float32 ``scale`` in model.json: value = int8 * scale). ``model.json`` records the format version, the
task, the labels, the feature settings (see :mod:`smallworld.student.features`), the weights' byte size and
sha256, thresholds chosen on dev, and provenance. Loading parses JSON and reads numbers: no code runs.

A second family, the character CNN (:mod:`.cnn`), writes ``model.json`` with ``format`` ``smallworld-cnn``
(``family`` ``char_cnn``) and ``model.onnx``; :func:`load` and :func:`save` dispatch on it, so everything that
loads a model directory (``smallworld score``, ``evaluate``, ``serve``) takes either.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from . import features
from .linear import LinearStudent

FORMAT = features.SCHEMA["format"]
VERSION = features.SCHEMA["version"]
MAX_JSON_BYTES = features.SCHEMA["max_json_bytes"]
MAX_WEIGHTS_BYTES = features.SCHEMA["max_weights_bytes"]
MAX_LABELS = features.SCHEMA["fields"]["labels"]["max_items"]
DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8}
# the keys ``save`` writes itself; everything else in model.json is the caller's metadata
FORMAT_KEYS = frozenset({"format", "version", "labels", "features", "dim", "classes", "dtype", "scale",
                         "weights_bytes", "weights_sha256"})


def save(model: LinearStudent, out_dir: str | Path, meta: dict | None = None, dtype: str = "float32") -> Path:
    if getattr(model, "family", "linear") != "linear":  # the CNN student writes its own directory (ONNX)
        return model.save(out_dir, meta)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    W, b = model.W, model.b
    header = {"format": FORMAT, "version": VERSION, "labels": list(model.labels),
              "features": dict(model.feature_config), "dim": int(W.shape[0]), "classes": int(W.shape[1]),
              "dtype": dtype}
    if dtype == "int8":
        scale = float(max(np.abs(W).max(), np.abs(b).max()) / 127.0) or 1.0
        header["scale"] = scale
        blob = np.round(W / scale).astype("<i1").tobytes() + np.round(b / scale).astype("<i1").tobytes()
    elif dtype in DTYPES:
        t = np.dtype(DTYPES[dtype]).newbyteorder("<")
        blob = W.astype(t).tobytes() + b.astype(t).tobytes()
    else:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}")
    header["weights_bytes"] = len(blob)
    header["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    header.update(meta or {})
    tmp = out / "weights.bin.tmp"
    tmp.write_bytes(blob)
    tmp.replace(out / "weights.bin")
    (out / "model.json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def metadata(header: dict) -> dict:
    """The caller's metadata in a header (task, thresholds, provenance): what to pass to ``save`` again."""
    return {k: v for k, v in header.items() if k not in FORMAT_KEYS}


def _read_json(model_dir: str | Path) -> dict:
    d = Path(model_dir)
    path = d / "model.json"
    if not path.is_file():
        raise ModelFileError(f"{d}: not a smallworld model directory (no model.json)")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ModelFileError(f"{path}: larger than {MAX_JSON_BYTES} bytes; refusing to read")
    try:
        h = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, number and nesting bombs
        raise ModelFileError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(h, dict):
        raise ModelFileError(f"{path}: not a {FORMAT} model file")
    return h


def _int(h: dict, key: str, path) -> int:
    v = h.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ModelFileError(f"{path}: {key!r} must be an integer, not {v!r}"[:300])
    return v


def read_header(model_dir: str | Path, h: dict | None = None) -> dict:
    """The header of a linear model directory, checked against the schema (``model.schema.json``: types and
    bounds, no coercion; the C scorer holds files to the same rules)."""
    path = Path(model_dir) / "model.json"
    h = _read_json(model_dir) if h is None else h
    if h.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a {FORMAT} model file")
    if _int(h, "version", path) != VERSION:
        raise ModelFileError(f"{path}: format version {h.get('version')!r}; this smallworld reads version {VERSION}")
    labels = h.get("labels")
    if not (isinstance(labels, list) and 2 <= len(labels) <= MAX_LABELS and all(isinstance(x, str) for x in labels)):
        raise ModelFileError(f"{path}: 'labels' must be a list of 2 to {MAX_LABELS} strings")
    if "features" not in h:
        raise ModelFileError(f"{path}: missing field 'features'")
    try:
        h["features"] = features.config(h["features"])
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}"[:300]) from None
    dim, K = _int(h, "dim", path), _int(h, "classes", path)
    if dim != 1 << h["features"]["dim_bits"] or K != len(labels):
        raise ModelFileError(f"{path}: dim/classes do not match the feature settings and labels")
    if not isinstance(h.get("dtype"), str) or h["dtype"] not in DTYPES:
        raise ModelFileError(f"{path}: unknown dtype {h.get('dtype')!r}"[:300])
    itemsize = np.dtype(DTYPES[h["dtype"]]).itemsize
    wb = _int(h, "weights_bytes", path)
    if wb != (dim * K + K) * itemsize or wb > MAX_WEIGHTS_BYTES:
        raise ModelFileError(f"{path}: weights_bytes does not match dim x classes x dtype")
    sc = h.get("scale")
    if h["dtype"] == "int8" and not (isinstance(sc, (int, float)) and not isinstance(sc, bool) and 0 < sc < float("inf")):
        raise ModelFileError(f"{path}: int8 weights need a positive 'scale'")
    sha = h.get("weights_sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise ModelFileError(f"{path}: 'weights_sha256' must be 64 lowercase hex digits")
    return h


def load(model_dir: str | Path):
    """``(model, header)``: a LinearStudent, or for a ``char_cnn`` directory an onnxruntime-backed
    :class:`.cnn.OnnxCNN` (same ``labels`` and ``predict_proba``)."""
    h = _read_json(model_dir)
    if h.get("format") == "smallworld-cnn":
        from . import cnn

        return cnn.load(model_dir, h)
    h = read_header(model_dir, h)
    wpath = Path(model_dir) / "weights.bin"
    if not wpath.is_file():
        raise ModelFileError(f"{model_dir}: weights.bin is missing")
    if wpath.stat().st_size != h["weights_bytes"]:
        raise ModelFileError(f"{wpath}: {wpath.stat().st_size} bytes, model.json says {h['weights_bytes']} (truncated?)")
    blob = wpath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != h["weights_sha256"]:
        raise ModelFileError(f"{wpath}: sha256 does not match model.json (corrupted or altered)")
    dim, K = h["dim"], h["classes"]
    t = np.dtype(DTYPES[h["dtype"]]).newbyteorder("<")
    arr = np.frombuffer(blob, dtype=t).astype(np.float32)
    if h["dtype"] == "int8":
        arr = arr * np.float32(h["scale"])
    if not np.all(np.isfinite(arr)):
        raise ModelFileError(f"{wpath}: weights contain NaN or infinity")
    m = LinearStudent(h["labels"], h["features"])
    m.W = np.ascontiguousarray(arr[: dim * K].reshape(dim, K))
    m.b = np.ascontiguousarray(arr[dim * K:])
    return m, h
