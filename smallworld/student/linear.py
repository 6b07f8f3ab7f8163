"""A linear softmax student trained by minimising cross-entropy against soft targets (L-BFGS).

Targets are probability rows (hard labels are one-hot rows), so teacher probabilities, sharpened or softened
by a temperature, and given labels mix in one loss. Follows scikit-learn conventions: ``fit`` returns self,
``predict_proba`` returns one column per class in ``labels`` order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

from . import features


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearStudent:
    def __init__(self, labels, feature_config: dict | None = None, l2: float = 1e-4, max_iter: int = 300):
        self.labels = tuple(labels)
        self.feature_config = features.config(feature_config)
        self.l2 = float(l2)
        self.max_iter = int(max_iter)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None

    # -- training ---------------------------------------------------------------------------------------
    def fit(self, texts, targets: np.ndarray, sample_weight: np.ndarray | None = None) -> "LinearStudent":
        X = features.transform(texts, self.feature_config)
        return self.fit_features(X, targets, sample_weight)

    def fit_features(self, X: sp.csr_matrix, targets: np.ndarray, sample_weight=None) -> "LinearStudent":
        Q = np.asarray(targets, dtype=np.float64)
        n, K = Q.shape
        if K != len(self.labels):
            raise ValueError(f"targets have {K} columns, the task has {len(self.labels)} labels")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        w = w / w.sum()
        # only columns that occur matter; optimise over them and scatter back (zeros elsewhere)
        cols = np.unique(X.indices)
        Xc = X[:, cols].tocsr().astype(np.float64)
        Xt = Xc.T.tocsr()
        D = len(cols)
        l2 = self.l2

        def fg(theta):
            Wc = theta[: D * K].reshape(D, K)
            b = theta[D * K:]
            Z = Xc @ Wc + b
            Zm = Z - Z.max(axis=1, keepdims=True)
            logZ = np.log(np.exp(Zm).sum(axis=1, keepdims=True))
            logP = Zm - logZ
            loss = -(w[:, None] * Q * logP).sum() + 0.5 * l2 * (Wc * Wc).sum()
            G = w[:, None] * (np.exp(logP) * Q.sum(axis=1, keepdims=True) - Q)
            gW = Xt @ G + l2 * Wc
            gb = G.sum(axis=0)
            return loss, np.concatenate([gW.ravel(), gb])

        theta0 = np.zeros(D * K + K)
        import scipy.optimize as so  # here, not at import: scoring never pays for it

        res = so.minimize(fg, theta0, jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iter, "gtol": 1e-7})
        W = np.zeros((X.shape[1], K), dtype=np.float32)
        W[cols] = res.x[: D * K].reshape(D, K)
        self.W = W
        self.b = res.x[D * K:].astype(np.float32)
        self.n_iter_ = int(res.nit)
        return self

    # -- scoring ----------------------------------------------------------------------------------------
    def decision_function(self, texts) -> np.ndarray:
        buf, offsets = features.pack(texts)
        return features.logits(buf, offsets, self.feature_config, self.W, self.b)

    def predict_proba(self, texts) -> np.ndarray:
        return _softmax(self.decision_function(texts))

    def predict(self, texts) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]
