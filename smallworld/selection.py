"""Choosing what to ask the teacher within a call budget: exact and near-duplicate (MinHash) collapsing,
uncertainty of the current student, diversity (k-center greedy over a random projection), and their
combination."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numba as nb
import numpy as np

from .choices import STRATEGIES  # noqa: F401  (re-exported)
from .student import features

CHUNK = 8192


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def _order(rows: Sequence[dict], seed: int) -> list[int]:
    """A stable pseudo-random order keyed by row id (adding rows keeps earlier picks)."""
    return sorted(range(len(rows)), key=lambda i: hashlib.sha256(f"{seed}:{rows[i]['id']}".encode()).digest())


def candidates(rows: Sequence[dict], seed: int = 0, exclude: set[str] | None = None) -> list[int]:
    """Indices in a stable random order, one per exact (case- and space-folded) duplicate, skipping empty
    texts and texts in ``exclude`` (already labelled)."""
    seen = set(exclude or ())
    out = []
    for i in _order(rows, seed):
        f = _fold(rows[i]["text"])
        if f in seen or not f:
            continue
        seen.add(f)
        out.append(i)
    return out


def margins(student, texts: Sequence[str]) -> np.ndarray:
    """The student's margin between its two most likely classes (small = uncertain), in chunks."""
    out = np.empty(len(texts))
    for a in range(0, len(texts), CHUNK):
        P = student.predict_proba(list(texts[a:a + CHUNK]))
        top2 = np.sort(P, axis=1)[:, -2:]
        out[a:a + CHUNK] = top2[:, 1] - top2[:, 0]
    return out


def embed(texts: Sequence[str], feature_cfg: dict, dims: int = 64, seed: int = 0) -> np.ndarray:
    """A dense random projection of the student's hashed features (rows L2-normalised), built in chunks so
    the sparse matrix of only one chunk is ever held. The projection is a random sign per (bucket, dimension)
    computed from a hash of the bucket (Achlioptas' +-1 projection), never stored: memory does not grow with
    the hash table (a stored 2**26 x 64 matrix would be 16 GiB)."""
    cfg = features.config(feature_cfg)
    out = np.zeros((len(texts), dims), dtype=np.float32)
    for a in range(0, len(texts), CHUNK):
        X = features.transform(list(texts[a:a + CHUNK]), cfg).tocsr()
        E = out[a:a + CHUNK]
        _sign_project(X.indptr, X.indices, X.data.astype(np.float32), dims, np.uint64(seed), E)
        E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-9)
    return out


@nb.njit(cache=True)
def _splitmix64(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@nb.njit(cache=True)
def _sign_project(indptr, indices, data, dims, seed, out):
    for i in range(len(indptr) - 1):
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            for blk in range(0, dims, 64):
                h = _splitmix64((np.uint64(indices[p]) << np.uint64(8)) ^ np.uint64(blk // 64) ^ (seed << np.uint64(40)))
                for j in range(blk, min(blk + 64, dims)):
                    if (h >> np.uint64(j - blk)) & np.uint64(1):
                        out[i, j] += v
                    else:
                        out[i, j] -= v


def k_center_greedy(E: np.ndarray, k: int, known: np.ndarray | None = None) -> list[int]:
    """Farthest-first traversal: each pick is the row farthest from everything picked or already known."""
    n = len(E)
    if n == 0 or k <= 0:
        return []
    d = np.full(n, np.inf, dtype=np.float32)
    if known is not None and len(known):
        for a in range(0, len(known), 1024):
            K = known[a:a + 1024]
            d = np.minimum(d, np.maximum(2 - 2 * (E @ K.T), 0).min(axis=1))
    picks = []
    cur = int(np.argmax(d)) if np.isfinite(d).any() else 0
    for _ in range(min(k, n)):
        picks.append(cur)
        d = np.minimum(d, np.maximum(2 - 2 * (E @ E[cur]), 0))
        d[cur] = -1.0
        cur = int(np.argmax(d))
    return picks


# MinHash over character 5-gram shingles (hashed into 2^26 buckets), 64 hashes in 8 bands of 8:
# rows whose estimated Jaccard similarity is >= 0.7 are near-duplicates.
MINHASH = {"perms": 64, "bands": 8, "threshold": 0.7}


@nb.njit(cache=True)
def _minhash(indices, indptr, a, b):
    n = indptr.shape[0] - 1
    P = a.shape[0]
    sig = np.full((n, P), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    for i in range(n):
        for j in range(indptr[i], indptr[i + 1]):
            x = np.uint64(indices[j])
            for p in range(P):
                h = np.uint32(((a[p] * x + b[p]) >> np.uint64(16)) & np.uint64(0xFFFFFFFF))
                if h < sig[i, p]:
                    sig[i, p] = h
    return sig


def minhash_signatures(texts: Sequence[str], perms: int = 64, seed: int = 0) -> np.ndarray:
    cfg = features.config({"ngram_min": 5, "ngram_max": 5, "tokens": False, "lowercase": True, "dim_bits": 26,
                           "max_bytes": 4096})
    rng = np.random.default_rng(seed + 7)
    a = (rng.integers(1, 2**62, size=perms, dtype=np.uint64) | np.uint64(1))
    b = rng.integers(0, 2**62, size=perms, dtype=np.uint64)
    out = np.empty((len(texts), perms), dtype=np.uint32)
    for s in range(0, len(texts), CHUNK):
        X = features.transform(list(texts[s:s + CHUNK]), cfg)
        out[s:s + CHUNK] = _minhash(X.indices.astype(np.int64), X.indptr, a, b)
    return out


def near_duplicate_clusters(texts: Sequence[str], seed: int = 0) -> np.ndarray:
    """Cluster id per text (the index of its representative): LSH banding finds candidate pairs, the full
    signature's agreement (estimated Jaccard) confirms them, union-find joins them."""
    sig = minhash_signatures(texts, MINHASH["perms"], seed)
    n, P = sig.shape
    r = P // MINHASH["bands"]
    parent = np.arange(n)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for band in range(MINHASH["bands"]):
        keys = np.ascontiguousarray(sig[:, band * r:(band + 1) * r]).view(np.dtype((np.void, 4 * r))).ravel()
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        start = 0
        for j in range(1, n + 1):
            if j == n or ks[j] != ks[start]:
                if j - start > 1:
                    head = order[start]
                    for m in order[start + 1:j]:
                        if (sig[head] == sig[m]).mean() >= MINHASH["threshold"]:
                            ra, rb = find(head), find(m)
                            if ra != rb:
                                parent[max(ra, rb)] = min(ra, rb)
                start = j
    return np.array([find(i) for i in range(n)])


@dataclass
class Selection:
    """What to ask the teacher (``ask``: row indices) and, for near-duplicate collapsing, which rows inherit
    a representative's answer (``members``: representative index -> other member indices)."""
    ask: list[int]
    members: dict[int, list[int]]
    seconds: float = 0.0


def kmeans_labels(E: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A cluster per row of ``E`` (scikit-learn's mini-batch k-means; ``k`` clusters at most)."""
    from sklearn.cluster import MiniBatchKMeans

    k = max(1, min(k, len(E)))
    if k == 1:
        return np.zeros(len(E), dtype=int)
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096, max_iter=50)
    return km.fit_predict(E)


def proportional_quota(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Calls per cluster in proportion to its size (largest remainder), never more than its size."""
    budget = int(min(budget, sizes.sum()))
    q = np.floor(sizes * budget / max(sizes.sum(), 1)).astype(int)
    for c in np.argsort(-(sizes * budget / max(sizes.sum(), 1) - q), kind="stable"):
        if q.sum() >= budget:
            break
        if q[c] < sizes[c]:
            q[c] += 1
    return q


def cluster_stratified(E: np.ndarray, budget: int, order: np.ndarray | None = None, seed: int = 0,
                       k: int | None = None) -> list[int]:
    """Stratified sampling over k-means clusters of the pool: each cluster gets calls in proportion to its size
    and, within a cluster, rows are taken in ``order`` (the candidates' stable random order by default; the
    student's margin for uncertainty within clusters). The sample follows the pool's own mix of kinds of item
    (a random sample's expectation) without a random sample's gaps and pile-ups."""
    n = len(E)
    if n == 0 or budget <= 0:
        return []
    lab = kmeans_labels(E, k or max(2, min(CLUSTERS, budget // 4)), seed)
    order = np.arange(n) if order is None else order
    q = proportional_quota(np.bincount(lab, minlength=lab.max() + 1), budget)
    taken = np.zeros_like(q)
    picks = []
    for j in order:
        c = lab[j]
        if taken[c] < q[c]:
            taken[c] += 1
            picks.append(int(j))
    return picks


CLUSTERS = 100       # k-means clusters at most for the cluster strategy (budget / 4 when smaller)
RANDOM_SHARE = 0.5   # the mixed strategy's share of random picks
DENSITY_SAMPLE = 2000  # rows the density of each candidate is measured against


def density(E: np.ndarray, seed: int = 0) -> np.ndarray:
    """Information density (Settles & Craven, 2008): each row's mean cosine similarity to a random sample of
    the pool, clipped at 0 (typical rows score high, outliers low)."""
    rng = np.random.default_rng(seed)
    S = E[rng.choice(len(E), size=min(DENSITY_SAMPLE, len(E)), replace=False)]
    out = np.empty(len(E), dtype=np.float32)
    for a in range(0, len(E), CHUNK):
        out[a:a + CHUNK] = np.maximum(E[a:a + CHUNK] @ S.T, 0).mean(axis=1)
    return out


def select(strategy: str, rows: Sequence[dict], budget: int, student=None, feature_cfg: dict | None = None,
           known_texts: Sequence[str] = (), seed: int = 0, exclude: set[str] | None = None,
           normalise=lambda row: row["text"]) -> Selection:
    """Choose up to ``budget`` rows to ask the teacher about.

    * random: a stable random sample (exact duplicates collapsed);
    * uncertainty: the smallest margins of the current student;
    * diversity: k-center greedy over a random projection of the student's features, far from what is
      already labelled (``known_texts``);
    * dedup: near-duplicates (MinHash/LSH, Jaccard >= 0.7 on 5-gram shingles) collapse to one
      representative per cluster; the teacher is asked about representatives only, and each other member
      inherits its representative's probabilities (rule documented in the README);
    * combined: dedup, then the 4 x budget most uncertain representatives, then k-center greedy to budget;
    * cluster: stratified random sampling over k-means clusters of the pool (calls in proportion to each
      cluster's size);
    * density: uncertainty weighted by information density, (1 - margin) x density;
    * mixed: a random share (half), the rest the most uncertain of what is left.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}")
    import time

    t0 = time.perf_counter()
    cand = candidates(rows, seed, exclude)
    texts = [normalise(rows[i]) for i in cand]  # each row as the student sees it (Task.view)
    members: dict[int, list[int]] = {}
    if strategy in ("dedup", "combined"):
        cl = near_duplicate_clusters(texts, seed)
        reps = [j for j in range(len(cand)) if cl[j] == j]
        for j in range(len(cand)):
            if cl[j] != j:
                members.setdefault(cand[cl[j]], []).append(cand[j])
        cand = [cand[j] for j in reps]
        texts = [texts[j] for j in reps]
    needs_student = strategy in ("uncertainty", "density", "mixed") or (strategy == "combined" and student is not None)
    margin = margins(student, texts) if needs_student and student is not None else np.zeros(len(texts))
    if strategy in ("random", "dedup"):
        pick = list(range(min(budget, len(cand))))
    elif strategy == "uncertainty":
        pick = list(np.argsort(margin, kind="stable")[:budget])
    elif strategy == "mixed":
        n_random = int(round(RANDOM_SHARE * min(budget, len(cand))))
        rest = np.arange(n_random, len(cand))
        pick = list(range(n_random)) + [int(j) for j in rest[np.argsort(margin[rest], kind="stable")][:budget - n_random]]
    elif strategy in ("cluster", "density"):
        E = embed(texts, feature_cfg or {}, seed=seed)
        if strategy == "cluster":
            pick = cluster_stratified(E, budget, seed=seed)
        else:
            pick = list(np.argsort(-(1 - margin) * density(E, seed), kind="stable")[:budget])
    else:
        pool = np.arange(len(cand))
        if strategy == "combined" and student is not None:
            pool = np.argsort(margin, kind="stable")[: 4 * budget]
        E = embed([texts[j] for j in pool], feature_cfg or {}, seed=seed)
        K = embed(list(known_texts), feature_cfg or {}, seed=seed) if len(known_texts) else None
        pick = [int(pool[j]) for j in k_center_greedy(E, budget, K)]
    ask = [cand[j] for j in pick]
    members = {a: members[a] for a in ask if a in members}
    return Selection(ask=ask, members=members, seconds=time.perf_counter() - t0)
