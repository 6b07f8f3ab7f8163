"""The leave-one-source-out gain of one teacher configuration over another, with a paired bootstrap: reads the
per-row held-out probabilities that bench/prompt_bench.py writes (one file per held-out source), computes each
configuration's ROC AUC per split, their mean over the splits, and a 90% interval of the mean gain by resampling
each split's rows (the same rows for both configurations, so the comparison is paired).

    .venv/bin/python bench/loso_gain.py bench/out/p9/heldout_cmdlines_atomic-red-team.npz \\
        bench/out/p9/heldout_cmdlines_lolbas.npz --baseline fixed_norubric --candidates "zero + both students"
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", help="heldout_<task>_<source>.npz from bench/prompt_bench.py")
    ap.add_argument("--baseline", default="fixed_norubric")
    ap.add_argument("--candidates", default="zero + both students", help="comma-separated keys")
    ap.add_argument("--boot", type=int, default=2000)
    a = ap.parse_args()
    splits = [np.load(f) for f in a.files]
    rng = np.random.default_rng(0)
    for cand in a.candidates.split(","):
        cand = cand.strip()
        per, draws = [], np.zeros((a.boot, len(splits)))
        for j, z in enumerate(splits):
            y, b, c = z["y"], z[a.baseline], z[cand]
            ok = ~(np.isnan(b) | np.isnan(c))
            y, b, c = y[ok], b[ok], c[ok]
            per.append((roc_auc_score(y, b), roc_auc_score(y, c), int(ok.sum())))
            pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
            for i in range(a.boot):  # resample within each class: every draw keeps the split's balance
                s = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
                draws[i, j] = roc_auc_score(y[s], c[s]) - roc_auc_score(y[s], b[s])
        gain = np.mean([p[1] - p[0] for p in per])
        lo, hi = np.percentile(draws.mean(axis=1), [5, 95])
        print(f"{cand} vs {a.baseline}: " + "; ".join(f"{f.split('heldout_')[-1][:-4]} {p[0]:.3f} -> {p[1]:.3f} (n {p[2]})"
                                                   for f, p in zip(a.files, per)))
        print(f"  LOSO mean {np.mean([p[0] for p in per]):.3f} -> {np.mean([p[1] for p in per]):.3f}: gain {gain:+.3f} "
              f"(90% paired bootstrap {lo:+.3f} to {hi:+.3f}); P(gain >= 0.10) = {(draws.mean(axis=1) >= 0.10).mean():.2f}")


if __name__ == "__main__":
    main()
