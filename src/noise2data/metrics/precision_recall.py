"""Precision and recall of a generative model with k-NN manifolds (Kynkaenniemi et al., 2019).

The real manifold is the union of balls around each real point with radius its distance to its
k-th nearest real neighbour; precision is the fraction of generated points inside it (are samples
realistic?), recall the fraction of real points inside the generated manifold (is the data
covered?). Both lie in [0, 1], higher is better; between two real samples they are below 1,
and that value is the floor to read a model's numbers against.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .samples import as_pair, pairwise_distances


def knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each point of ``x: (n, d)`` to its k-th nearest other point, ``(n,)``."""
    if len(x) <= k:
        raise UserError(f"k-NN radii need more than k={k} points, got {len(x)}")
    radii = torch.empty(len(x), dtype=x.dtype)
    for i, j, d in pairwise_distances(x, x):
        if j == 0:
            rows = torch.full((len(d), k + 1), float("inf"), dtype=x.dtype)
        rows = torch.cat([rows, d], 1).topk(k + 1, dim=1, largest=False).values
        if j + d.shape[1] >= len(x):
            radii[i:i + len(d)] = rows[:, k]  # column 0 is the point itself (distance 0)
    return radii


def coverage_fraction(points: Tensor, centres: Tensor, radii: Tensor) -> float:
    """Fraction of ``points`` within ``radii[j]`` of some ``centres[j]``."""
    inside = torch.zeros(len(points), dtype=torch.bool)
    for i, j, d in pairwise_distances(points, centres):
        inside[i:i + len(d)] |= (d <= radii[j:j + d.shape[1]]).any(1)
    return float(inside.double().mean())


def precision_recall(x: Tensor | np.ndarray, y: Tensor | np.ndarray, *, k: int = 3) -> tuple[float, float]:
    """``(precision, recall)`` of samples ``x: (n, *D)`` against real data ``y: (m, *D)``."""
    fake, real = as_pair(x, y)
    precision = coverage_fraction(fake, real, knn_radii(real, k))
    recall = coverage_fraction(real, fake, knn_radii(fake, k))
    return precision, recall
