"""Debiased distances: U-statistics whose expectation is exactly 0 when the two laws are equal.

The V-statistics of :mod:`.distances` (and W2) are positive between two samples of one law, and
in 6 or 10 dimensions W2 at a few thousand points is so dominated by that bias that it cannot rank
models (a model can even score "better than data" by being under-dispersed). The unbiased
estimators here remove the self-pairs, so their mean is 0 under equal laws and grows with any
difference; a value is then judged by its confidence interval: an interval that holds 0 is
"within sampling noise".

    energy_u   2 E|X - Y| - E|X - X'| - E|Y - Y'| over distinct pairs (Szekely and Rizzo)
    mmd2_u     MMD^2 with the multi-bandwidth RBF kernel of :func:`.distances.mmd`, distinct pairs

The interval (:func:`with_interval`) comes from K disjoint blocks of both samples: each block's
statistic is unbiased too, so the blocks' mean +- t_{K-1} sd / sqrt(K) is an honest interval for it;
it is at least as wide as the full statistic's (exact under a difference, conservative under
equal laws, where the full statistic's spread shrinks faster than 1/sqrt(n)).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .distances import MMD_SCALES, euclidean, mean_kernel, median_distance, rbf_kernel
from .samples import as_pair

# two-sided 95 % Student t quantiles by degrees of freedom (K - 1 for K blocks)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}


def _t95(dof: int) -> float:
    if dof < 1:
        return math.inf
    return T95[max(k for k in T95 if k <= dof)]  # the tabulated dof at or below: a slightly wider interval


def _mean_within(p: Tensor, kernel: Callable[[Tensor], Tensor]) -> float:
    """Mean of ``kernel(distance^2)`` over the distinct pairs i != j of ``p: (n, d)``."""
    n = len(p)
    if n < 2:
        raise UserError("a debiased distance needs at least 2 points in each sample")
    total = mean_kernel(p, p, kernel) * n * n
    diag = float(kernel(torch.zeros(1, dtype=p.dtype))) * n  # the i == j terms, all at distance 0
    return (total - diag) / (n * (n - 1))


def energy_u(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """Unbiased energy distance between ``x: (n, *D)`` and ``y: (m, *D)``; 0 in expectation for equal laws.

    Can be slightly negative (sampling noise). Has the units of a distance.
    """
    a, b = as_pair(x, y)
    return 2 * mean_kernel(a, b, euclidean) - _mean_within(a, euclidean) - _mean_within(b, euclidean)


def mmd2_u(x: Tensor | np.ndarray, y: Tensor | np.ndarray, *, scales: tuple[float, ...] = MMD_SCALES,
           bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the kernel of :func:`.distances.mmd`.

    The base bandwidth is ``bandwidth`` or the median pairwise distance of the reference ``y``.
    Squared units; 0 in expectation for equal laws, and may be slightly negative.
    """
    a, b = as_pair(x, y)
    k = rbf_kernel(bandwidth if bandwidth is not None else median_distance(b), scales)
    return _mean_within(a, k) + _mean_within(b, k) - 2 * mean_kernel(a, b, k)


DEBIASED: dict[str, Callable[..., float]] = {"energy_u": energy_u, "mmd2_u": mmd2_u}


def with_interval(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, name: str, *, blocks: int = 10, seed: int = 0,
) -> tuple[float, float, float]:
    """``(value, low, high)``: the debiased distance ``name`` on the full samples and a 95 % interval.

    The interval is the mean of the statistic over ``blocks`` disjoint random blocks of both samples
    plus or minus t_{K-1} sd / sqrt(K), centred on the full value. MMD's bandwidth is fixed once from
    the whole reference, so every block uses the same kernel.
    """
    if name not in DEBIASED:
        raise UserError(f"unknown debiased distance '{name}': expected one of {', '.join(DEBIASED)}")
    a, b = as_pair(x, y)
    kwargs = {"bandwidth": median_distance(b)} if name == "mmd2_u" else {}
    fn = DEBIASED[name]
    value = fn(a, b, **kwargs)
    k = min(blocks, len(a) // 2, len(b) // 2)
    if k < 2:
        return value, -math.inf, math.inf
    g = torch.Generator().manual_seed(seed)
    pa, pb = torch.randperm(len(a), generator=g), torch.randperm(len(b), generator=g)
    parts = [fn(a[ia], b[ib], **kwargs) for ia, ib in zip(pa.chunk(k), pb.chunk(k), strict=True)]
    half = _t95(k - 1) * statistics.stdev(parts) / math.sqrt(k)
    return value, value - half, value + half
