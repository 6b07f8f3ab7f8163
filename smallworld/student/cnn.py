"""A second student family: a small character (byte) CNN in the spirit of eXpose, trained in PyTorch on the same
soft targets and per-row weights as :class:`~smallworld.student.linear.LinearStudent`, saved as ONNX and
scored with onnxruntime (torch is needed to train, not to score).

Input (the *vocabulary rule*, recorded in ``model.json``): the item's UTF-8 bytes; an item longer than
``max_len`` bytes keeps its first ``head`` and its last ``max_len - head`` bytes; byte ``b`` becomes id
``b + 1``, the sequence is framed by a start id (257) and an end id (258), and id 0 pads. No lowercasing.

Network: a 32-dimensional embedding (the padding id embeds to zeros), parallel 1-d convolutions of widths
2, 3, 4 and 5 with 64 filters each, ReLU, a global max over positions, a dense layer of 64 units with ReLU
and a softmax over the classes. The max also takes the value of a window made only of padding (ReLU of the
filter's bias), so an item's probabilities do not depend on how much padding its batch adds: a batch is
padded to its longest sequence plus ``max(widths) - 1``, which is what lets batches of short URLs run short.

Training minimises the weighted soft cross-entropy ``-sum_i w_i sum_k q_ik log p_ik / sum_i w_i`` (plus a
small L2 penalty) with Adam, mini-batches of similar lengths, a fixed number of epochs and a fixed seed.

The model directory holds ``model.json`` (``format`` ``smallworld-cnn``, ``family`` ``char_cnn``, labels,
the vocabulary rule, the architecture, the ONNX file's size and sha256, thresholds and the task) and
``model.onnx`` (one self-contained file, no external data). Loading parses JSON, checks the size and
sha256, and hands the bytes to onnxruntime, which parses a protobuf graph of standard operators: no pickle,
no Python code from the file runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numba as nb
import numpy as np

from ..errors import ModelFileError, SmallworldError
from . import features

FORMAT = "smallworld-cnn"
FAMILY = "char_cnn"
VERSION = 1
ONNX_FILE = "model.onnx"
MAX_ONNX_BYTES = 256 << 20
VOCAB = 259                  # 0 pad, 1..256 bytes, 257 start, 258 end
START, END = 257, 258
CHUNK = 256                  # rows per forward pass when scoring (bounded memory at any batch size)
FORMAT_KEYS = frozenset({"format", "family", "version", "labels", "classes", "vocabulary", "architecture",
                         "weights_file", "weights_bytes", "weights_sha256"})


def vocabulary(max_len: int = 256, head: int | None = None, pad: int = 4) -> dict:
    head = (3 * max_len) // 4 if head is None else head
    return {"unit": "utf8_byte", "lowercase": False, "max_len": int(max_len), "head": int(head),
            "ids": {"pad": 0, "byte": "b + 1", "start": START, "end": END}, "size": VOCAB, "pad_after": int(pad)}


# -- input encoding --------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def _fill(buf, offsets, order, max_len, head, out):
    for r in range(order.shape[0]):
        i = order[r]
        s, e = offsets[i], offsets[i + 1]
        n = e - s
        out[r, 0] = START
        o = 1
        if n <= max_len:
            for j in range(s, e):
                out[r, o] = np.int64(buf[j]) + 1
                o += 1
        else:
            for j in range(s, s + head):
                out[r, o] = np.int64(buf[j]) + 1
                o += 1
            for j in range(e - (max_len - head), e):
                out[r, o] = np.int64(buf[j]) + 1
                o += 1
        out[r, o] = END


def encode(texts, vocab: dict, order: np.ndarray | None = None) -> np.ndarray:
    """Token ids (int64, rows x T) of ``texts`` (in ``order`` when given), padded to the longest sequence plus
    ``pad_after``."""
    buf, offsets = features.pack(texts)
    return _encode_packed(buf, offsets, np.arange(len(offsets) - 1) if order is None else order, vocab)


def _encode_packed(buf, offsets, order, vocab: dict) -> np.ndarray:
    order = np.asarray(order, dtype=np.int64)
    lens = np.minimum(np.diff(offsets)[order], vocab["max_len"]) + 2
    T = int(lens.max(initial=2)) + int(vocab["pad_after"])
    out = np.zeros((len(order), T), dtype=np.int64)
    _fill(buf, offsets, order, int(vocab["max_len"]), int(vocab["head"]), out)
    return out


def _chunks_by_length(texts: list, vocab: dict, chunk: int):
    """(row indices, ids) for chunks of rows of similar length; every row once."""
    buf, offsets = features.pack(texts)
    order = np.argsort(np.minimum(np.diff(offsets), vocab["max_len"]), kind="stable")
    for a in range(0, len(order), chunk):
        idx = order[a:a + chunk]
        yield idx, _encode_packed(buf, offsets, idx, vocab)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# -- the network (torch) ---------------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:
        raise SmallworldError("the CNN student needs PyTorch to train: pip install 'smallworld[cnn]'") from None
    return torch


def _net(torch, K: int, arch: dict):
    nn = torch.nn

    class CharCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, arch["embedding"], padding_idx=0)
            self.convs = nn.ModuleList(nn.Conv1d(arch["embedding"], arch["filters"], w) for w in arch["widths"])
            self.fc = nn.Linear(arch["filters"] * len(arch["widths"]), arch["hidden"])
            self.out = nn.Linear(arch["hidden"], K)
            self.drop = nn.Dropout(arch["dropout"])

        def forward(self, ids):  # logits
            h = self.emb(ids).transpose(1, 2)
            # the max over positions includes an all-padding window (ReLU of the bias): padding-invariant
            z = torch.cat([torch.maximum(torch.relu(c(h)).amax(dim=2), torch.relu(c.bias)) for c in self.convs], 1)
            z = torch.relu(self.fc(self.drop(z)))
            return self.out(self.drop(z))

    class Probs(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, ids):
            return torch.softmax(self.net(ids), dim=1)

    return CharCNN, Probs


class CNNStudent:
    """fit(texts, targets, sample_weight) / predict_proba(texts), like LinearStudent; ``save(dir, meta)``."""

    family = FAMILY

    def __init__(self, labels, max_len: int = 256, embedding: int = 32, widths=(2, 3, 4, 5), filters: int = 64,
                 hidden: int = 64, dropout: float = 0.1, epochs: int = 15, batch_size: int = 64, lr: float = 3e-3,
                 l2: float = 1e-5, seed: int = 0, threads: int = 1):
        self.labels = tuple(labels)
        self.vocab = vocabulary(max_len, pad=max(widths) - 1)
        self.arch = {"embedding": int(embedding), "widths": [int(w) for w in widths], "filters": int(filters),
                     "hidden": int(hidden), "dropout": float(dropout), "pool": "global_max",
                     "activation": "relu", "output": "softmax"}
        self.epochs, self.batch_size, self.lr, self.l2 = int(epochs), int(batch_size), float(lr), float(l2)
        self.seed, self.threads = int(seed), int(threads)
        self.net = None

    def fit(self, texts, targets: np.ndarray, sample_weight: np.ndarray | None = None) -> "CNNStudent":
        torch = _torch()
        torch.set_num_threads(self.threads)
        texts = list(texts)
        Q = np.asarray(targets, dtype=np.float32)
        n, K = Q.shape
        if K != len(self.labels):
            raise ValueError(f"targets have {K} columns, the task has {len(self.labels)} labels")
        w = np.ones(n, np.float32) if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        keep = w > 0
        if not keep.any():
            raise ValueError("every sample weight is zero")
        w = w / w[keep].sum() * keep.sum()  # mean weight 1 over the rows that count
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        CharCNN, _ = _net(torch, K, self.arch)
        net = CharCNN()
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.l2)
        rows = np.flatnonzero(keep)
        buf, offsets = features.pack(texts)
        lens = np.minimum(np.diff(offsets), self.vocab["max_len"])
        steps = self.epochs * max(1, math.ceil(len(rows) / self.batch_size))
        # (a warm-up of at least two steps: OneCycleLR divides by zero on a shorter one, as a small seed gives)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(steps, 4),
                                                    pct_start=min(0.5, max(0.1, 2.0 / max(steps, 4))))
        net.train()
        done = 0
        for _ in range(self.epochs):
            perm = rng.permutation(rows)
            batches = []
            for a in range(0, len(perm), 32 * self.batch_size):  # similar lengths within a batch
                mega = perm[a:a + 32 * self.batch_size]
                mega = mega[np.argsort(lens[mega], kind="stable")]
                batches += [mega[b:b + self.batch_size] for b in range(0, len(mega), self.batch_size)]
            for bi in rng.permutation(len(batches)):
                idx = batches[bi]
                ids = torch.from_numpy(_encode_packed(buf, offsets, idx, self.vocab))
                logp = torch.log_softmax(net(ids), dim=1)
                q, wt = torch.from_numpy(Q[idx]), torch.from_numpy(w[idx])
                loss = -(wt[:, None] * q * logp).sum() / wt.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if done < steps - 1:
                    sched.step()
                done += 1
        net.eval()
        self.net = net
        return self

    def predict_proba(self, texts) -> np.ndarray:
        torch = _torch()
        torch.set_num_threads(self.threads)
        texts = list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        with torch.no_grad():
            for idx, ids in _chunks_by_length(texts, self.vocab, CHUNK):
                out[idx] = torch.softmax(self.net(torch.from_numpy(ids)), dim=1).double().numpy()
        return out

    def predict(self, texts) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    # -- the model directory ---------------------------------------------------------------------------------
    def onnx_bytes(self) -> bytes:
        torch = _torch()
        import io

        _, Probs = _net(torch, len(self.labels), self.arch)
        m = Probs(self.net).eval()
        f = io.BytesIO()
        example = torch.from_numpy(encode(["http://example.com/a"], self.vocab))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (example,), f, dynamo=False, input_names=["ids"], output_names=["probs"],
                              dynamic_axes={"ids": {0: "batch", 1: "length"}, "probs": {0: "batch"}},
                              opset_version=17, do_constant_folding=True)
        return f.getvalue()

    def save(self, out_dir: str | Path, meta: dict | None = None) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        blob = self.onnx_bytes()
        header = {"format": FORMAT, "family": FAMILY, "version": VERSION, "labels": list(self.labels),
                  "classes": len(self.labels), "vocabulary": self.vocab, "architecture": self.arch,
                  "weights_file": ONNX_FILE, "weights_bytes": len(blob),
                  "weights_sha256": hashlib.sha256(blob).hexdigest(),
                  "training": {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "l2": self.l2,
                               "seed": self.seed, "loss": "weighted soft cross-entropy", "optimizer": "adam"}}
        header.update(meta or {})
        tmp = out / (ONNX_FILE + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(out / ONNX_FILE)
        (out / "model.json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return out


# -- scoring with onnxruntime ----------------------------------------------------------------------------------
class OnnxCNN:
    """A loaded CNN model directory: ``predict_proba(texts)`` through onnxruntime (one thread by default)."""

    family = FAMILY

    def __init__(self, labels, vocab: dict, onnx: bytes, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise SmallworldError("scoring a CNN model needs onnxruntime: pip install 'smallworld[onnx]'") from None
        self.labels = tuple(labels)
        self.vocab = vocab
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for malformed graphs
            raise ModelFileError(f"{ONNX_FILE}: onnxruntime cannot load it ({type(e).__name__}: {str(e)[:200]})") from None
        outs = self.session.get_outputs()
        if [i.name for i in self.session.get_inputs()] != ["ids"] or len(outs) != 1:
            raise ModelFileError(f"{ONNX_FILE}: expected one input 'ids' and one output")

    def predict_proba(self, texts) -> np.ndarray:
        texts = texts if isinstance(texts, list) else list(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for idx, ids in _chunks_by_length(texts, self.vocab, CHUNK):
            out[idx] = self.session.run(None, {"ids": ids})[0]
        return out

    def predict(self, texts) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]


def check_header(h: dict, path: Path) -> dict:
    try:
        if h.get("version") != VERSION:
            raise ModelFileError(f"{path}: format version {h.get('version')!r}; this smallworld reads version {VERSION}")
        if h.get("family") != FAMILY:
            raise ModelFileError(f"{path}: unknown model family {h.get('family')!r}")
        labels = h["labels"]
        if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels)):
            raise ModelFileError(f"{path}: 'labels' must be a list of at least two strings")
        if int(h["classes"]) != len(labels):
            raise ModelFileError(f"{path}: classes does not match labels")
        v = h["vocabulary"]
        ml, head, pad = v["max_len"], v["head"], v["pad_after"]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (ml, head, pad)):
            raise ModelFileError(f"{path}: vocabulary max_len, head and pad_after must be integers")
        if not (1 <= ml <= 1 << 16 and 0 <= head <= ml and 0 <= pad <= 64) or v.get("unit") != "utf8_byte" \
                or v.get("lowercase") is not False or v.get("size") != VOCAB or v.get("ids") != vocabulary()["ids"]:
            raise ModelFileError(f"{path}: unsupported vocabulary rule {v!r}")
        if h["weights_file"] != ONNX_FILE:
            raise ModelFileError(f"{path}: weights_file must be {ONNX_FILE!r}")
        if not (isinstance(h["weights_bytes"], int) and 0 < h["weights_bytes"] <= MAX_ONNX_BYTES):
            raise ModelFileError(f"{path}: weights_bytes must be a positive integer up to {MAX_ONNX_BYTES}")
        if not isinstance(h["weights_sha256"], str):
            raise ModelFileError(f"{path}: weights_sha256 missing")
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise ModelFileError(f"{path}: missing or invalid field ({e})") from None
    return h


def load(model_dir: str | Path, h: dict, threads: int = 1) -> tuple[OnnxCNN, dict]:
    d = Path(model_dir)
    check_header(h, d / "model.json")
    p = d / ONNX_FILE
    if not p.is_file():
        raise ModelFileError(f"{model_dir}: {ONNX_FILE} is missing")
    if p.stat().st_size != h["weights_bytes"]:
        raise ModelFileError(f"{p}: {p.stat().st_size} bytes, model.json says {h['weights_bytes']} (truncated?)")
    blob = p.read_bytes()
    if hashlib.sha256(blob).hexdigest() != h["weights_sha256"]:
        raise ModelFileError(f"{p}: sha256 does not match model.json (corrupted or altered)")
    return OnnxCNN(h["labels"], h["vocabulary"], blob, threads), h
