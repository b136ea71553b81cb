"""Couplings of noise and data in a training batch.

Flow matching trains on pairs (x0, x1); any coupling whose marginals are p_init and p_data gives
a valid objective. ``independent`` pairs them at random. ``ot`` (minibatch optimal transport,
Pooladian et al. 2023; Tong et al. 2023) re-pairs the noise within each batch to minimise the total
squared distance: the marginals are unchanged (a permutation of i.i.d. noise is i.i.d. noise), and
the learned paths are straighter, so few-step solvers lose less.

The exact assignment costs O(B^3): about 25-45 ms at B = 512 on one CPU core, more than a step of
the default MLP. ``ot-blocks`` solves it exactly within blocks of at most 128 points made by
bisecting both samples at the median of their principal direction, recursively: a 512-batch is
about 4x cheaper, with a transport cost a few percent above the optimum in 2-D and 10-30 % above
in 6-10 dimensions (measured in ``benchmarks/recipe.py``; the tests bound it). Both keep the noise
a permutation of i.i.d. draws, and both pair only within groups when given ``groups`` (class
labels, or for vector conditions the buckets of :func:`condition_groups`), so a conditional model
never learns a path from one class's noise to another's data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .errors import UserError, require

Coupling = Callable[..., Tensor]  # (x0, x1, groups=None) -> x0 re-ordered to pair with x1
BLOCK = 128  # largest block ot-blocks solves exactly


def independent(x0: Tensor, x1: Tensor, groups: Tensor | None = None) -> Tensor:
    """The independent coupling: keep the random pairing. ``(B, *D) -> (B, *D)``."""
    return x0


def ot_assignment(x0: Tensor, x1: Tensor) -> Tensor:
    """The permutation ``perm`` minimising ``sum_i |x0[perm[i]] - x1[i]|^2``, ``(B,)`` long.

    Solved exactly as a linear assignment problem (scipy's Jonker-Volgenant), in float64.
    """
    optimize = require("scipy.optimize", "metrics", "the minibatch OT coupling")
    cost = torch.cdist(x1.flatten(1).double(), x0.flatten(1).double()).pow(2)  # (B, B): rows = x1
    rows, cols = optimize.linear_sum_assignment(cost.cpu().numpy())
    perm = torch.empty(len(rows), dtype=torch.long)
    perm[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm.to(x0.device)


def block_assignment(x0: Tensor, x1: Tensor, block: int = BLOCK) -> Tensor:
    """An assignment ``perm: (B,)`` optimal within blocks of at most ``block`` points.

    Both samples are split at the median of their projections on the principal direction of
    ``x1`` (the first right singular vector of the centred points), recursively, so that the
    i-th block of data is paired with the i-th block of noise along the same direction.
    """
    n = x1.shape[0]
    if n <= block:
        return ot_assignment(x0, x1)
    a, b = x0.flatten(1).double(), x1.flatten(1).double()
    w = torch.linalg.svd(b - b.mean(0), full_matrices=False).Vh[0]  # (d,)
    i0, i1 = (a @ w).argsort(), (b @ w).argsort()
    half = n // 2
    perm = torch.empty(n, dtype=torch.long, device=x0.device)
    for s0, s1 in ((i0[:half], i1[:half]), (i0[half:], i1[half:])):
        perm[s1] = s0[block_assignment(x0[s0], x1[s1], block)]
    return perm


def _within_groups(solve: Callable[[Tensor, Tensor], Tensor], x0: Tensor, x1: Tensor, groups: Tensor | None) -> Tensor:
    """``solve`` within each group of ``groups: (B,)`` (one group: all), as a permutation of x0's rows.

    The noise is i.i.d., so group g (its data rows in batch order) takes the next n_g noise rows
    in batch order; the law of the noise each data point gets is unchanged.
    """
    if groups is None:
        return solve(x0, x1)
    groups = groups.reshape(groups.shape[0], -1)
    if groups.shape[1] != 1 or groups.is_floating_point():
        raise UserError("OT couplings pair within class labels (B,) integers; vector conditions are not grouped")
    groups = groups[:, 0]
    perm = torch.empty(x1.shape[0], dtype=torch.long, device=x0.device)
    start = 0
    for g in torch.unique(groups):
        rows = (groups == g).nonzero().squeeze(1)
        noise = torch.arange(start, start + len(rows), device=x0.device)
        start += len(rows)
        perm[rows] = noise[solve(x0[noise], x1[rows])]
    return perm


def minibatch_ot(x0: Tensor, x1: Tensor, groups: Tensor | None = None) -> Tensor:
    """Re-order the noise ``x0: (B, *D)`` into its optimal-transport pairing with ``x1: (B, *D)``
    (within each class of ``groups: (B,)`` when given)."""
    return x0[_within_groups(ot_assignment, x0, x1, groups)]


def blocked_ot(x0: Tensor, x1: Tensor, groups: Tensor | None = None) -> Tensor:
    """:func:`minibatch_ot` solved within principal-direction blocks of at most 128 points (see the module)."""
    return x0[_within_groups(block_assignment, x0, x1, groups)]


def condition_groups(cond: Tensor, k: int = 16, iterations: int = 25) -> Tensor:
    """Integer groups ``(N,)`` of training conditions, for coupling within groups.

    Class labels ``(N,)`` are their own groups. Vector conditions ``(N, m)`` with at most ``k``
    distinct rows are grouped by value; otherwise by k-means (Lloyd's algorithm on standardised
    columns, started from the first ``k`` distinct rows after a fixed shuffle, so the buckets are a
    pure function of the data: the same on resume and on every process).
    """
    if cond.ndim == 1 and not cond.is_floating_point():
        return cond.long()
    y = cond.reshape(cond.shape[0], -1).double()
    values, inverse = torch.unique(y, dim=0, return_inverse=True)
    if len(values) <= k:
        return inverse
    z = (y - y.mean(0)) / y.std(0).clamp(min=1e-12)
    order = torch.randperm(len(values), generator=torch.Generator().manual_seed(0))
    centres = ((values[order[:k]] - y.mean(0)) / y.std(0).clamp(min=1e-12)).to(z.device)
    for _ in range(iterations):
        assign = torch.cdist(z, centres).argmin(1)  # (N,)
        for j in range(k):
            members = z[assign == j]
            if len(members):
                centres[j] = members.mean(0)
    return torch.cdist(z, centres).argmin(1)


COUPLINGS: dict[str, Coupling] = {"independent": independent, "ot": minibatch_ot, "ot-blocks": blocked_ot}


def get_coupling(name: str) -> Coupling:
    """A coupling by name."""
    if name not in COUPLINGS:
        raise UserError(f"unknown coupling '{name}': expected one of {', '.join(COUPLINGS)}")
    return COUPLINGS[name]
