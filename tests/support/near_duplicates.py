"""Binary user features with many near-duplicate users, so LSH recall at J >= 0.5 can be measured."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def near_duplicate_users(
    n_base: int = 300, copies: int = 2, n_features: int = 3000, size: int = 24, seed: int = 0
) -> sp.csr_matrix:
    """Base users with random feature sets plus perturbed copies (0–8 features swapped: Jaccard ~0.5–1)."""
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    cols: list[int] = []
    user = 0
    for _ in range(n_base):
        base = rng.choice(n_features, size, replace=False)
        for c in range(copies + 1):
            feats = base.copy()
            n_swap = int(rng.integers(0, 9)) if c else 0
            feats[:n_swap] = rng.choice(n_features, n_swap, replace=False)
            feats = np.unique(feats)
            rows += [user] * len(feats)
            cols += feats.tolist()
            user += 1
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(user, n_features))
