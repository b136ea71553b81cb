"""Elements, typical bond lengths and valences: what turns atom positions into bonds.

Bond orders come from interatomic distances the standard way for generated 3-D molecules: a pair
is bonded when its distance lies within a margin of the typical single-bond length of its
elements, and the order is raised to 2 or 3 when it is also within a (tighter) margin of the
double or triple length. Lengths are typical covalent bond lengths in picometres.
"""

from __future__ import annotations

import torch
from torch import Tensor

ELEMENTS = ("H", "C", "N", "O", "F")  # QM9's elements; type index = position here
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
VALENCE = {"H": 1, "C": 4, "N": 3, "O": 2, "F": 1}

SINGLE = {  # pm
    ("H", "H"): 74, ("H", "C"): 109, ("H", "N"): 101, ("H", "O"): 96, ("H", "F"): 92,
    ("C", "C"): 154, ("C", "N"): 147, ("C", "O"): 143, ("C", "F"): 135,
    ("N", "N"): 145, ("N", "O"): 140, ("N", "F"): 136,
    ("O", "O"): 148, ("O", "F"): 142, ("F", "F"): 142,
}
DOUBLE = {("C", "C"): 134, ("C", "N"): 129, ("C", "O"): 120, ("N", "N"): 125, ("N", "O"): 121, ("O", "O"): 121}
TRIPLE = {("C", "C"): 120, ("C", "N"): 116, ("C", "O"): 113, ("N", "N"): 110}
MARGINS = (10, 5, 3)  # pm added to the single, double and triple lengths


def _table(lengths: dict[tuple[str, str], int]) -> Tensor:
    """``(T, T)`` lengths in Angstrom (symmetric); 0 where the bond does not exist."""
    n = len(ELEMENTS)
    t = torch.zeros(n, n, dtype=torch.float64)
    for (a, b), pm in lengths.items():
        i, j = ELEMENTS.index(a), ELEMENTS.index(b)
        t[i, j] = t[j, i] = pm / 100.0
    return t


# upper distance limits (Angstrom) of single, double and triple bonds: length + margin, 0 = no such bond
LIMITS = tuple(_table(tab) + (_table(tab) > 0) * m / 100.0
               for tab, m in zip((SINGLE, DOUBLE, TRIPLE), MARGINS, strict=True))


def bond_orders(positions: Tensor, types: Tensor) -> Tensor:
    """Bond orders ``(N, N)`` (0 to 3) of one molecule: ``positions (N, 3)`` in Angstrom, ``types (N,)``."""
    d = torch.cdist(positions.double(), positions.double())  # (N, N)
    ti, tj = types[:, None], types[None, :]
    order = torch.zeros_like(d, dtype=torch.long)
    for k, limit in enumerate(LIMITS, start=1):
        lim = limit[ti, tj]
        order = torch.where((lim > 0) & (d < lim) if k == 1 else (lim > 0) & (d < lim) & (order == k - 1),
                            torch.full_like(order, k), order)
    order.fill_diagonal_(0)
    return order


def atom_stability(positions: Tensor, types: Tensor) -> Tensor:
    """Per atom ``(N,)`` bool: is the sum of its bond orders its element's valence?"""
    valence = torch.tensor([VALENCE[e] for e in ELEMENTS])[types]
    return bond_orders(positions, types).sum(1) == valence
