"""Molecules as tensors, and the noise they start from.

A molecule of n atoms, padded to ``N = N_max``, is ``x: (N, 3 + T)``: positions (Angstrom) then
its atom types one-hot, scaled by ``type_scale`` (so types and positions move on comparable
scales); ``mask: (N,)`` marks the real atoms. Positions live on the zero-centre-of-mass subspace
(mean over real atoms 0), which makes the model's law translation-invariant; the noise p_init
is the standard Gaussian on that subspace (positions) times a standard Gaussian (types), and
every padded entry is 0. Batches are ``(B, N, 3 + T)`` with ``mask: (B, N)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError
from .chemistry import ELEMENTS
from .data import MoleculeSet

NUM_TYPES = len(ELEMENTS)


def remove_com(x: Tensor, mask: Tensor) -> Tensor:
    """Subtract the mean position over real atoms: ``x: (B, N, 3 + T)``, ``mask: (B, N)``; padding stays 0."""
    m = mask.to(x.dtype)[..., None]  # (B, N, 1)
    pos = x[..., :3]
    mean = (pos * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)  # (B, 1, 3)
    return torch.cat([(pos - mean) * m, x[..., 3:] * m], dim=-1)


def atom_mask(cond: Tensor, max_atoms: int) -> Tensor:
    """The atom mask ``(B, N)`` of a molecule condition: the mask itself (bool), or the float ``(B, N + k)``
    of a property-conditioned model, whose first ``N`` columns are the mask as 0/1."""
    return cond if cond.dtype == torch.bool else cond[:, :max_atoms] > 0.5


def drop_properties(cond: Tensor, max_atoms: int, p: float, generator: torch.Generator) -> Tensor:
    """Classifier-free guidance's dropout: each row's properties (after the mask) set to NaN with probability p."""
    drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < p  # (B,)
    props = torch.where(drop[:, None], torch.full_like(cond[:, max_atoms:], float("nan")), cond[:, max_atoms:])
    return torch.cat([cond[:, :max_atoms], props], 1)


def sample_prior(mask: Tensor, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """x0 ``(B, N, 3 + T)``: N(0, I) on the zero-centre-of-mass subspace of positions, N(0, I) types."""
    eps = torch.randn((*mask.shape, 3 + NUM_TYPES), generator=generator, device=mask.device, dtype=dtype)
    return remove_com(eps, mask)


def encode(data: MoleculeSet, type_scale: float) -> Tensor:
    """Molecules as ``x1: (M, N, 3 + T)``, centred, with scaled one-hot types (padding 0)."""
    onehot = torch.nn.functional.one_hot(data.types, NUM_TYPES).float() * type_scale
    return remove_com(torch.cat([data.positions.float(), onehot], dim=-1), data.mask)


def decode(x: Tensor, mask: Tensor) -> list[tuple[Tensor, Tensor]]:
    """``(positions (n, 3), types (n,))`` per molecule; a type is the largest of its one-hot channels."""
    out = []
    for xi, mi in zip(x, mask, strict=True):
        real = xi[mi]
        out.append((real[:, :3].float(), real[:, 3:].argmax(-1)))
    return out


class SizeDistribution:
    """The number of atoms of the training molecules, to draw sizes for new ones."""

    def __init__(self, counts: dict[int, int]) -> None:
        if not counts or any(k < 1 or v < 0 for k, v in counts.items()) or not sum(counts.values()):
            raise UserError(f"a size histogram needs positive atom counts with frequencies, got {counts}")
        self.sizes = torch.tensor(sorted(counts))
        self.probs = torch.tensor([counts[k] for k in sorted(counts)], dtype=torch.float64)
        self.probs = self.probs / self.probs.sum()

    @classmethod
    def fit(cls, data: MoleculeSet) -> SizeDistribution:
        values, counts = data.sizes().unique(return_counts=True)
        return cls({int(v): int(c) for v, c in zip(values, counts, strict=True)})

    def to_dict(self) -> dict[str, float]:
        return {str(int(s)): float(p) for s, p in zip(self.sizes, self.probs, strict=True)}

    @classmethod
    def from_dict(cls, d: dict) -> SizeDistribution:
        out = cls({int(k): 1 for k in d})
        out.probs = torch.tensor([float(d[str(int(s))]) for s in out.sizes], dtype=torch.float64)
        return out

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n,)`` atom counts."""
        return self.sizes[torch.multinomial(self.probs, n, replacement=True, generator=generator)]


def formula_key(counts: dict[str, int]) -> str:
    """A heavy-atom formula, e.g. ``C6N1O1F0``, from atom counts per element (hydrogens ignored)."""
    return "".join(f"{e}{int(counts.get(e, 0))}" for e in ELEMENTS if e != "H")


def composition_key(types: Tensor) -> str:
    """A molecule's heavy-atom formula (see :func:`formula_key`) from its atom types ``(n,)``."""
    return formula_key({e: int((types == ELEMENTS.index(e)).sum()) for e in ELEMENTS})


def sizes_by_composition(data: MoleculeSet) -> dict[str, dict[str, int]]:
    """How many training molecules of each heavy-atom formula have each atom count: the sizes to draw when
    samples are asked for a composition."""
    out: dict[str, dict[str, int]] = {}
    for types, mask in zip(data.types, data.mask, strict=True):
        key, size = composition_key(types[mask]), str(int(mask.sum()))
        out.setdefault(key, {})
        out[key][size] = out[key].get(size, 0) + 1
    return out


def size_mask(sizes: Tensor, max_atoms: int) -> Tensor:
    """``(B, max_atoms)`` True for the first ``sizes[b]`` atoms."""
    if int(sizes.max()) > max_atoms:
        raise UserError(f"molecules of {int(sizes.max())} atoms do not fit this model's {max_atoms} atom slots")
    return torch.arange(max_atoms, device=sizes.device)[None] < sizes[:, None]
