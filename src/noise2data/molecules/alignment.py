"""Equivariant optimal-transport coupling: each molecule's noise, permuted and rotated onto it.

The prior and (up to the arbitrary orientation and atom order a conformer file happens to have) the
data are invariant under rotations and permutations of atoms, so a noise draw can be replaced by the
member of its orbit closest to the molecule it is paired with (Klein et al. 2023, "Equivariant flow
matching"; SemlaFlow). The paths from noise to data get shorter and cross less, which is what a flow
model finds easy to learn. Per molecule, alternately:

1. **permute** the noise's real atoms (whole atoms: position and type noise together) by the
   assignment that minimises the summed squared distance of positions (Hungarian, scipy's exact
   linear_sum_assignment);
2. **rotate** the noise's positions about the origin by the proper rotation that minimises the same
   sum (Kabsch: the SVD of the 3 x 3 cross-covariance, with the sign fix that excludes reflections).

Each step can only lower the distance, so the result is never farther from the molecule than the draw.
Padding is never touched and the centre of mass stays 0 (permutations keep it, rotations are about it).
The alignment is a deterministic function of the draw and the molecule, so a resumed run is exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import require


def kabsch(p: Tensor, q: Tensor) -> Tensor:
    """The proper rotation ``R: (B, 3, 3)`` minimising ``sum_i |R p_i - q_i|^2`` for ``p, q: (B, n, 3)``
    (rows of padding must be 0 in both)."""
    h = p.double().transpose(1, 2) @ q.double()  # (B, 3, 3): sum_i p_i q_i^T
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))  # (B,) -1 where a reflection is best
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))  # (B, 3, 3)
    return (vt.transpose(1, 2) @ fix @ u.transpose(1, 2)).to(p.dtype)


def permute_to(x0: Tensor, x1: Tensor, mask: Tensor) -> Tensor:
    """``x0: (B, N, F)`` with each molecule's real atoms reordered to minimise the squared distance of their
    positions (``[..., :3]``) to ``x1``'s; padding stays where it is."""
    optimize = require("scipy.optimize", "metrics", "the equivariant OT coupling (--coupling ot) of molecules")
    out = x0.clone()
    p0, p1 = x0[..., :3].detach().double().cpu(), x1[..., :3].detach().double().cpu()
    for b in range(x0.shape[0]):
        idx = mask[b].nonzero().squeeze(1).cpu()  # (n,) real atoms
        cost = torch.cdist(p1[b, idx], p0[b, idx]).pow(2)  # (n, n): molecule atom i <- noise atom j
        _, cols = optimize.linear_sum_assignment(cost.numpy())
        dev_idx = idx.to(x0.device)
        out[b, dev_idx] = x0[b, dev_idx[torch.as_tensor(cols, device=x0.device)]]
    return out


def rotate_to(x0: Tensor, x1: Tensor) -> Tensor:
    """``x0: (B, N, F)`` with its positions rotated (about the origin) onto ``x1``'s by Kabsch."""
    rot = kabsch(x0[..., :3], x1[..., :3])  # (B, 3, 3)
    return torch.cat([x0[..., :3] @ rot.transpose(1, 2), x0[..., 3:]], -1)


def align_noise(x0: Tensor, x1: Tensor, mask: Tensor, rounds: int = 2) -> Tensor:
    """The noise ``x0: (B, N, 3 + T)`` permuted and rotated onto the molecules ``x1`` (``mask: (B, N)``),
    ``rounds`` times each (see the module docstring)."""
    for _ in range(rounds):
        x0 = rotate_to(permute_to(x0, x1, mask), x1)
    return x0


def squared_distance(x0: Tensor, x1: Tensor) -> Tensor:
    """``(B,)`` summed squared distance of positions between noise and molecules."""
    return (x0[..., :3] - x1[..., :3]).pow(2).sum((1, 2))
