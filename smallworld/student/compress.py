"""Smaller models without retraining: fold the hash table to fewer buckets, store float16 or int8 weights.

Folding is exact at the feature level: a feature's bucket is ``hash & (2**dim_bits - 1)``, so with fewer bits
its bucket is the old bucket's low bits, and the folded feature vector is the old one with the buckets that
share their low bits summed (the 1/sqrt(count) scaling counts occurrences, not buckets, so it is unchanged).
The folded model gives each new bucket the sum of the weights of the old buckets folded into it. Measured
on urls and cmdlines (``bench/compress_bench.py``) this loses no more dev ROC AUC than retraining at the
smaller size, while zeroing the smallest buckets before folding ("pruning") gained nothing, and cannot
shrink a dense weights file, so it is not offered.

Storage (see :mod:`.modelfile`): float32 4 bytes, float16 2 bytes, int8 1 byte per weight, ``2**dim_bits x
classes`` weights. Softmax only depends on differences between class logits, so scores survive quantisation
well; thresholds chosen on dev for the source model are kept as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from . import modelfile
from .linear import LinearStudent


def fold(model: LinearStudent, dim_bits: int) -> LinearStudent:
    """The model on ``2**dim_bits`` buckets: each new bucket's weights are the sum of the old buckets with
    the same low ``dim_bits`` bits (what re-hashing with the smaller mask sends there)."""
    old = model.feature_config["dim_bits"]
    if not 8 <= dim_bits <= old:
        raise ModelFileError(f"cannot fold a 2**{old}-bucket model to 2**{dim_bits} buckets "
                             f"(need 8 <= dim_bits <= {old})")
    out = LinearStudent(model.labels, dict(model.feature_config, dim_bits=dim_bits), model.l2, model.max_iter)
    W = model.W.astype(np.float64).reshape(1 << (old - dim_bits), 1 << dim_bits, model.W.shape[1])
    out.W = W.sum(axis=0).astype(np.float32)
    out.b = model.b.copy()
    return out


def compress(model_dir: str | Path, out_dir: str | Path, dtype: str | None = None,
             dim_bits: int | None = None) -> Path:
    """Write a folded and/or quantised copy of a saved model (metadata kept, provenance added)."""
    if dtype is not None and dtype not in modelfile.DTYPES:
        raise ModelFileError(f"--dtype must be one of {sorted(modelfile.DTYPES)}, not {dtype!r}")
    if Path(out_dir).resolve() == Path(model_dir).resolve():
        raise ModelFileError(f"{out_dir}: write the compressed model to a new directory")
    model, header = modelfile.load(model_dir)
    if not isinstance(model, LinearStudent):
        raise ModelFileError(f"{model_dir}: compress works with linear models; this one is {header.get('family')}")
    if dim_bits is not None:
        model = fold(model, dim_bits)
    meta = modelfile.metadata(header)
    meta["compressed_from"] = {"weights_sha256": header["weights_sha256"], "dtype": header["dtype"],
                               "dim_bits": header["features"]["dim_bits"]}
    return modelfile.save(model, out_dir, meta, dtype=dtype or header["dtype"])


def model_bytes(model_dir: str | Path) -> int:
    """Bytes on disk: model.json + weights.bin."""
    d = Path(model_dir)
    return sum((d / f).stat().st_size for f in ("model.json", "weights.bin"))
