"""Couplings of noise and data in a training batch.

Flow matching trains on pairs (x0, x1); any coupling whose marginals are p_init and p_data gives
a valid objective. ``independent`` pairs them at random. ``ot`` (minibatch optimal transport,
Pooladian et al. 2023; Tong et al. 2023) re-pairs the noise within each batch to minimise the total
squared distance: the marginals are unchanged (a permutation of i.i.d. noise is i.i.d. noise), and
the learned paths are straighter, so few-step solvers lose less.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .errors import UserError, require

Coupling = Callable[[Tensor, Tensor], Tensor]  # (x0, x1) -> x0 re-ordered to pair with x1


def independent(x0: Tensor, x1: Tensor) -> Tensor:
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


def minibatch_ot(x0: Tensor, x1: Tensor) -> Tensor:
    """Re-order the noise ``x0: (B, *D)`` into its optimal-transport pairing with ``x1: (B, *D)``."""
    return x0[ot_assignment(x0, x1)]


COUPLINGS: dict[str, Coupling] = {"independent": independent, "ot": minibatch_ot}


def get_coupling(name: str) -> Coupling:
    """A coupling by name."""
    if name not in COUPLINGS:
        raise UserError(f"unknown coupling '{name}': expected one of {', '.join(COUPLINGS)}")
    return COUPLINGS[name]
