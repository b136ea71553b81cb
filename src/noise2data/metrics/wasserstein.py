"""The 2-Wasserstein distance between two samples, exactly (POT's network simplex)."""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from ..errors import UserError, require

EXACT_LIMIT = 10_000


def w2_exact(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """W2 between the empirical measures of ``x: (n, *D)`` and ``y: (m, *D)`` (uniform weights).

    Solves the optimal transport linear program exactly with POT (the ``metrics`` extra), in
    float64 with squared Euclidean cost. O(n^2) memory: at most 10,000 points a side.
    """
    ot = require("ot", "metrics", "the exact W2 distance")
    a = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64).reshape(len(x), -1)
    b = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.float64).reshape(len(y), -1)
    if a.shape[1] != b.shape[1]:
        raise UserError(f"W2 needs samples of the same dimension, got {a.shape[1]} and {b.shape[1]}")
    if max(len(a), len(b)) > EXACT_LIMIT:
        raise UserError(f"exact W2 is limited to {EXACT_LIMIT} points a side; subsample first")
    cost = ot.dist(a, b, metric="sqeuclidean")
    val = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=10_000_000)
    return math.sqrt(max(float(val), 0.0))
