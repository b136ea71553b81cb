"""Distances between two samples: sliced W2, MMD (multi-bandwidth RBF) and energy distance.

Each is a function ``metric(x, y) -> float`` on samples ``x: (n, *D)``, ``y: (m, *D)``; the
reference sample is ``y``. All are V-statistics (biased, never negative), so a metric between two
independent samples of the same law is a positive number that shrinks with n: the noise floor
that :func:`noise2data.metrics.compare` reports beside every value.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .samples import as_pair, pairwise_distances

# RBF bandwidths as multiples of the reference sample's median pairwise distance.
MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def w2_squared_1d(xs: Tensor, ys: Tensor) -> Tensor:
    """Exact W2^2 between 1-D empirical measures given their sorted values ``(n, P)``, ``(m, P)``.

    W2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du, where both quantile functions are step functions:
    constant between consecutive breakpoints of {i/n} U {j/m}. Returns ``(P,)``.
    """
    n, m = len(xs), len(ys)
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    u = torch.unique(u)  # sorted breakpoints, ending at 1
    widths = torch.diff(u, prepend=u.new_zeros(1))
    mid = u - widths / 2
    ix = (mid * n).long().clamp_max(n - 1)
    iy = (mid * m).long().clamp_max(m - 1)
    return (widths[:, None] * (xs[ix] - ys[iy]).pow(2)).sum(0)


def sliced_w2(x: Tensor | np.ndarray, y: Tensor | np.ndarray, *, projections: int = 500, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance: sqrt of the mean over random unit directions of the 1-D W2^2.

    Scales to any number of points and any dimension (a sort per direction); each 1-D W2 is
    exact, also for samples of different sizes. ``projections`` directions are drawn from ``seed``.
    (POT's ``sliced_wasserstein_distance`` computes the same, about 10x slower on 5k points.)
    """
    a, b = as_pair(x, y)
    if projections < 1:
        raise UserError(f"sliced W2 needs at least one projection, got {projections}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    total = torch.zeros((), dtype=torch.float64)
    for j in range(0, projections, 256):  # chunks bound memory at (n + m) x 256 projections
        th = theta[:, j:j + 256]
        total = total + w2_squared_1d((a @ th).sort(0).values, (b @ th).sort(0).values).sum()
    return math.sqrt(float(total) / projections)


def median_distance(y: Tensor, max_points: int = 2000) -> float:
    """The median pairwise distance within ``y: (m, d)`` (from its first ``max_points`` points)."""
    z = y[:max_points]
    d = torch.cdist(z, z)
    iu = torch.triu_indices(len(z), len(z), 1)
    med = float(d[iu[0], iu[1]].median()) if len(z) > 1 else 1.0
    return med if med > 0 else 1.0


def rbf_kernel(bandwidth: float, scales: tuple[float, ...] = MMD_SCALES):  # noqa: ANN201 - a kernel of d^2
    """k(d^2) = mean_s exp(-d^2 / (2 (s h)^2)) over ``scales`` s, base bandwidth h."""
    gammas = [1.0 / (2.0 * (s * bandwidth) ** 2) for s in scales]

    def k(d2: Tensor) -> Tensor:
        return sum(torch.exp(-g * d2) for g in gammas) / len(gammas)

    return k


def euclidean(d2: Tensor) -> Tensor:
    """The distance from its square, as a kernel of d^2 (energy distances)."""
    return d2.clamp_min(0).sqrt()


def mean_kernel(p: Tensor, q: Tensor, kernel) -> float:  # noqa: ANN001 - a function of d^2
    """Mean of ``kernel(|p_i - q_j|^2)`` over all pairs (i, j), in blocks."""
    return sum(float(kernel(d2).sum()) for _, _, d2 in pairwise_distances(p, q, squared=True)) / (len(p) * len(q))


def mmd(x: Tensor | np.ndarray, y: Tensor | np.ndarray, *, scales: tuple[float, ...] = MMD_SCALES,
        bandwidth: float | None = None) -> float:
    """Maximum mean discrepancy with a sum of RBF kernels, ``sqrt`` of the V-statistic.

    k(a, b) = mean_s exp(-|a - b|^2 / (2 (s h)^2)) over ``scales`` s, where the base bandwidth h is
    ``bandwidth`` or the median pairwise distance of the reference ``y``. Fixing h from the
    reference makes a model's value and the noise floor (real vs real) use the same kernel.
    """
    a, b = as_pair(x, y)
    k = rbf_kernel(bandwidth if bandwidth is not None else median_distance(b), scales)
    val = mean_kernel(a, a, k) + mean_kernel(b, b, k) - 2 * mean_kernel(a, b, k)
    return math.sqrt(max(val, 0.0))


def energy_distance(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (V-statistic; zero iff the laws agree)."""
    a, b = as_pair(x, y)
    return max(2 * mean_kernel(a, b, euclidean) - mean_kernel(a, a, euclidean) - mean_kernel(b, b, euclidean), 0.0)
