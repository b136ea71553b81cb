"""A set of 3-D molecules as padded arrays, stored as .npz; XYZ files in and out.

``positions: (M, N_max, 3)`` in Angstrom, ``types: (M, N_max)`` indices into :data:`ELEMENTS`,
``mask: (M, N_max)`` True for real atoms (padding has position 0 and type 0), and optionally
the SMILES each molecule was built from (novelty is judged against them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.arrays import open_npz
from ..errors import UserError
from .chemistry import ELEMENTS


@dataclass
class MoleculeSet:
    positions: Tensor
    types: Tensor
    mask: Tensor
    smiles: list[str] | None = None

    def __post_init__(self) -> None:
        m, n = self.mask.shape
        if self.positions.shape != (m, n, 3) or self.types.shape != (m, n):
            raise UserError(f"molecule arrays do not agree: positions {tuple(self.positions.shape)}, types "
                            f"{tuple(self.types.shape)}, mask {(m, n)}; expected (M, N, 3), (M, N), (M, N)")
        if self.smiles is not None and len(self.smiles) != m:
            raise UserError(f"{len(self.smiles)} SMILES for {m} molecules")

    def __len__(self) -> int:
        return self.mask.shape[0]

    @property
    def max_atoms(self) -> int:
        return self.mask.shape[1]

    def sizes(self) -> Tensor:
        """Atoms per molecule ``(M,)``."""
        return self.mask.sum(1)

    def molecule(self, i: int) -> tuple[Tensor, Tensor]:
        """``(positions (n, 3), types (n,))`` of molecule ``i`` without padding."""
        keep = self.mask[i]
        return self.positions[i][keep], self.types[i][keep]

    def subset(self, idx: Tensor) -> MoleculeSet:
        smiles = [self.smiles[int(i)] for i in idx] if self.smiles is not None else None
        return MoleculeSet(self.positions[idx], self.types[idx], self.mask[idx], smiles)

    @classmethod
    def from_molecules(cls, molecules: list[tuple[Tensor, Tensor]], smiles: list[str] | None = None) -> MoleculeSet:
        """Pad ``(positions (n, 3), types (n,))`` pairs into one set."""
        if not molecules:
            raise UserError("no molecules to make a set of")
        n_max = max(len(t) for _, t in molecules)
        pos, types = torch.zeros(len(molecules), n_max, 3), torch.zeros(len(molecules), n_max, dtype=torch.long)
        mask = torch.zeros(len(molecules), n_max, dtype=torch.bool)
        for i, (p, t) in enumerate(molecules):
            pos[i, :len(t)], types[i, :len(t)], mask[i, :len(t)] = p, t, True
        return cls(pos, types, mask, smiles)

    @classmethod
    def read(cls, path: str | Path) -> MoleculeSet:
        """A set from .npz (this format), .xyz (multi-molecule) or .sdf (RDKit); positions are centred."""
        suffix = Path(path).suffix.lower()
        if suffix == ".npz":
            return cls.load(path)
        if suffix not in (".xyz", ".sdf"):
            raise UserError(f"molecule files are .npz, .xyz or .sdf; got {path}")
        mols = read_xyz(path) if suffix == ".xyz" else read_sdf(path)
        return cls.from_molecules([(p - p.mean(0), t) for p, t in mols])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"positions": self.positions.numpy().astype(np.float32), "types": self.types.numpy().astype(np.int8),
                  "mask": self.mask.numpy(), "elements": np.array(ELEMENTS)}
        if self.smiles is not None:
            arrays["smiles"] = np.array(self.smiles)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MoleculeSet:
        z, keys = open_npz(path, "molecule file (build one with 'noise2data data qm9 ...')")
        missing = {"positions", "types", "mask"} - keys
        if missing:
            raise UserError(f"{path} is not a molecule set: missing {', '.join(sorted(missing))} "
                            "(expected positions, types, mask)")
        if "elements" in keys and tuple(z["elements"].tolist()) != ELEMENTS:
            raise UserError(f"{path} uses elements {z['elements'].tolist()}, this version uses {list(ELEMENTS)}")
        pos = torch.from_numpy(z["positions"].astype(np.float32))
        if not torch.isfinite(pos).all():
            raise UserError(f"{path}: positions contain NaN/Inf")
        types, mask = torch.from_numpy(z["types"].astype(np.int64)), torch.from_numpy(z["mask"].astype(bool))
        if mask.ndim != 2 or not mask.any() or int(types[mask].min()) < 0 or int(types[mask].max()) >= len(ELEMENTS):
            raise UserError(f"{path}: atom types must be indices 0..{len(ELEMENTS) - 1} of {list(ELEMENTS)}")
        smiles = z["smiles"].tolist() if "smiles" in keys else None
        return cls(pos, types, mask, smiles)


def to_xyz(positions: Tensor, types: Tensor, comment: str = "") -> str:
    """One molecule in XYZ format: ``positions (n, 3)`` in Angstrom, ``types (n,)``."""
    lines = [str(len(types)), comment.replace("\n", " ")]
    rows = zip(positions.tolist(), types.tolist(), strict=True)
    lines += [f"{ELEMENTS[t]:<2} {p[0]:12.6f} {p[1]:12.6f} {p[2]:12.6f}" for p, t in rows]
    return "\n".join(lines) + "\n"


def read_xyz(path: str | Path) -> list[tuple[Tensor, Tensor]]:
    """Every molecule of a (multi-)XYZ file as ``(positions (n, 3), types (n,))``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"XYZ file not found: {path}")
    lines, out, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i])
            rows = [ln.split() for ln in lines[i + 2: i + 2 + n]]
            types = torch.tensor([ELEMENTS.index(r[0]) for r in rows])
            pos = torch.tensor([[float(v) for v in r[1:4]] for r in rows])
        except (ValueError, IndexError):
            raise UserError(f"{path}: malformed XYZ near line {i + 1} (expected an atom count, a comment line, then "
                            f"'element x y z' per atom with elements in {list(ELEMENTS)})") from None
        if len(rows) != n:
            raise UserError(f"{path}: molecule at line {i + 1} announces {n} atoms but has {len(rows)}")
        out.append((pos, types))
        i += 2 + n
    return out


def read_sdf(path: str | Path) -> list[tuple[Tensor, Tensor]]:
    """Every molecule of an SDF file (with its hydrogens, as stored) as ``(positions (n, 3), types (n,))``."""
    from ..errors import require

    Chem = require("rdkit.Chem", "mol", "reading SDF")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SDF file not found: {path}")
    out = []
    for i, mol in enumerate(Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)):
        if mol is None or mol.GetNumConformers() == 0:
            raise UserError(f"{path}: molecule {i} cannot be read or has no 3-D coordinates")
        symbols = [a.GetSymbol() for a in mol.GetAtoms()]
        if any(s not in ELEMENTS for s in symbols):
            raise UserError(f"{path}: molecule {i} has elements outside {list(ELEMENTS)}")
        pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32)
        out.append((pos, torch.tensor([ELEMENTS.index(s) for s in symbols])))
    return out
