"""Top k of a score vector with brute force's tie rule, in O(n) rather than a full sort.

Brute force ranks every user by ``np.argsort(-scores, kind="stable")``: best score first, ties broken by
the lower row. Online expansion, batch expansion and the exact fallback all select with ``top_k_order`` so
their rankings agree row for row, not just as sets.
"""

from __future__ import annotations

import numpy as np

# Below this many scores one sort beats partition-then-sort (fewer calls; online short lists are ~130).
SORT_BELOW = 1024


def top_k_order(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Positions of the ``k`` best scores (all of them when k is None or >= len), best first, ties by
    lower position — the first ``k`` of a stable descending argsort, without sorting all of ``scores``."""
    scores = np.asarray(scores)
    n = len(scores)
    if k is None or k >= n or n <= SORT_BELOW:
        return np.argsort(-scores, kind="stable")[:k]  # stable: ties keep position order
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    kth = scores[np.argpartition(-scores, k - 1)[:k]].min()
    above = np.flatnonzero(scores > kth)
    ties = np.flatnonzero(scores == kth)[: k - len(above)]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -scores[chosen]))]
