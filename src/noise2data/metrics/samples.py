"""Turning user input (tensors or arrays of any shape) into flat float64 point clouds."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError


def as_points(x: Tensor | np.ndarray, name: str = "samples") -> Tensor:
    """``(n, *D)`` -> float64 ``(n, d)`` on the CPU, rejecting empty or non-finite input."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach()).cpu()
    if t.ndim < 1 or t.shape[0] == 0:
        raise UserError(f"{name} is empty: a metric needs at least one point")
    t = t.reshape(t.shape[0], -1).to(torch.float64)
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).any(1).sum())
        raise UserError(f"{name} has {bad} point(s) with NaN or Inf: a metric of them would be meaningless")
    return t


def as_pair(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """Two point clouds of the same dimension, as :func:`as_points`."""
    a, b = as_points(x, "the first sample"), as_points(y, "the second sample")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"the two samples differ in dimension ({a.shape[1]} vs {b.shape[1]}): "
                        "compare samples of the same data shape")
    return a, b


BLOCK = 2048  # rows and columns per block of a distance matrix


def pairwise_distances(x: Tensor, y: Tensor, *, squared: bool = False, block: int | None = None):
    """Yield ``(i, j, D)`` blocks of the distance matrix between ``x: (n, d)`` and ``y: (m, d)``.

    Blocks keep memory at O(block^2) whatever n and m are, so metrics work on 50k points.
    """
    block = block or BLOCK
    for i in range(0, len(x), block):
        xi = x[i:i + block]
        for j in range(0, len(y), block):
            d2 = torch.cdist(xi, y[j:j + block]).pow(2)
            yield i, j, d2 if squared else d2.clamp_min(0).sqrt()
