"""Couplings of noise and data in a training batch.

Flow matching trains on pairs (x0, x1); any coupling whose marginals are p_init and p_data gives
a valid objective. ``independent`` pairs them at random. ``ot`` (minibatch optimal transport,
Pooladian et al. 2023; Tong et al. 2023) re-pairs the noise within each batch to minimise the total
squared distance: the marginals are unchanged (a permutation of i.i.d. noise is i.i.d. noise), and
the learned paths are straighter, so few-step solvers lose less.

The exact assignment costs O(B^3): about 45-65 ms at B = 512 on one CPU core, more than two steps
of the default MLP. ``ot-blocks`` solves it exactly within blocks of at most 64 points made by
bisecting both samples at the median of their principal direction, recursively (all groups of one
level at once): at B = 512 a training step costs 1.2-1.3x an independent one instead of 2.6-3.5x,
with a transport cost 8 % above the optimum in 2-D and about 20 % in 6-D (blocks of 128: 4-5 % and
15 %, 1.4x the step; the trained 2-D models were equally good with blocks of 32, 64 and 128:
``benchmarks/recipe.py cost`` and ``train``/``eval``; the tests bound the cost). Both keep the noise
a permutation of i.i.d. draws, and both pair only within groups when given ``groups`` (class
labels, or for vector conditions the buckets of :func:`condition_groups`), so a conditional model
never learns a path from one class's noise to another's data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor

from .errors import UserError, require

Coupling = Callable[..., Tensor]  # (x0, x1, groups=None) -> x0 re-ordered to pair with x1
BLOCK = 64  # largest block ot-blocks solves exactly (see benchmarks/recipe.py cost)


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


def _principal(p: np.ndarray) -> np.ndarray:
    """The principal direction ``(G, d)`` of each group of points ``p: (G, m, d)``."""
    c = p - p.mean(1, keepdims=True)
    if c.shape[2] <= c.shape[1]:  # few dimensions: the top eigenvector of the d x d scatter matrix
        return np.linalg.eigh(c.transpose(0, 2, 1) @ c)[1][:, :, -1]
    return np.linalg.svd(c, full_matrices=False)[2][:, 0]  # many: the first right singular vector


def _split(a: np.ndarray, b: np.ndarray, i0: np.ndarray, i1: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Halve groups of equal size at the median along each group's principal direction.

    ``i0, i1: (G, m)`` index rows of the noise ``a`` and the data ``b``; the direction is that of
    the group's data. Returns the low and the high halves.
    """
    pb = b[i1]  # (G, m, d)
    w = _principal(pb)[:, :, None]  # (G, d, 1)
    i0 = np.take_along_axis(i0, (a[i0] @ w)[:, :, 0].argsort(1, kind="stable"), 1)
    i1 = np.take_along_axis(i1, (pb @ w)[:, :, 0].argsort(1, kind="stable"), 1)
    half = i0.shape[1] // 2
    return [(i0[:, :half], i1[:, :half]), (i0[:, half:], i1[:, half:])]


def _by_size(groups: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stack the groups ``[(G_k, m_k) index pairs]`` of each size into one ``(G, m)`` pair."""
    sizes = sorted({g[0].shape[1] for g in groups})
    return [(np.concatenate([g[0] for g in groups if g[0].shape[1] == m]),
             np.concatenate([g[1] for g in groups if g[1].shape[1] == m])) for m in sizes]


def block_assignment(x0: Tensor, x1: Tensor, block: int | None = None) -> Tensor:
    """An assignment ``perm: (B,)`` optimal within blocks of at most ``block`` points (default ``BLOCK``).

    Both samples are split at the median of their projections on the principal direction of
    ``x1``'s points, recursively, so that the i-th block of data is paired with the i-th block of
    noise along the same direction. The groups of one level are split together (batched, in numpy
    on the CPU: the blocks are small), and the leaves are solved one by one.
    """
    n, block = x1.shape[0], block or BLOCK
    if n <= block:
        return ot_assignment(x0, x1)
    optimize = require("scipy.optimize", "metrics", "the minibatch OT coupling")
    a = x0.detach().flatten(1).double().cpu().numpy()
    b = x1.detach().flatten(1).double().cpu().numpy()
    groups = [(np.arange(n)[None], np.arange(n)[None])]
    while groups[-1][0].shape[1] > block:  # sizes differ by at most one: the last is the largest
        groups = _by_size([half for i0, i1 in groups for half in _split(a, b, i0, i1)])
    sq_a, sq_b = (a * a).sum(1), (b * b).sum(1)
    perm = np.empty(n, dtype=np.int64)
    for i0, i1 in groups:  # (G, m): cost[g, i, j] = |b[i1[g, i]] - a[i0[g, j]]|^2
        cost = sq_b[i1][:, :, None] + sq_a[i0][:, None, :] - 2 * b[i1] @ a[i0].transpose(0, 2, 1)
        cols = np.stack([optimize.linear_sum_assignment(c)[1] for c in cost])
        perm[i1.ravel()] = np.take_along_axis(i0, cols, 1).ravel()
    return torch.from_numpy(perm).to(x0.device)


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


def blocked_ot(x0: Tensor, x1: Tensor, groups: Tensor | None = None, block: int | None = None) -> Tensor:
    """:func:`minibatch_ot` solved within principal-direction blocks of at most ``block`` points (default
    ``BLOCK``, see the module)."""
    return x0[_within_groups(partial(block_assignment, block=block), x0, x1, groups)]


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
    """A coupling by name; ``ot-blocks:N`` is ``ot-blocks`` with blocks of at most N points (N >= 2)."""
    base, _, block = name.partition(":")
    if base == "ot-blocks" and block:
        if not block.isdigit() or int(block) < 2:
            raise UserError(f"coupling '{name}': the block size after 'ot-blocks:' must be an integer >= 2, "
                            "e.g. ot-blocks:128")
        return partial(blocked_ot, block=int(block))
    if name not in COUPLINGS:
        raise UserError(f"unknown coupling '{name}': expected one of {', '.join(COUPLINGS)} (or ot-blocks:N)")
    return COUPLINGS[name]


def ot_available() -> bool:
    """Whether the OT couplings can run here: they need scipy's assignment solver (the metrics extra)."""
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


def is_ot(name: str) -> bool:
    """Whether a coupling name pairs noise with data by optimal transport (``ot``, ``ot-blocks[:N]``)."""
    return name == "ot" or name.partition(":")[0] == "ot-blocks"
