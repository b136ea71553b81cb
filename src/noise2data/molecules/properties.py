"""Molecular properties to condition on, computed by RDKit, and how far samples land from a request.

A property vector has one column per name in :data:`PROPERTIES`: the number of heavy atoms of each
element (C, N, O, F), the number of rings (SSSR) and the topological polar surface area (TPSA,
Angstrom^2: a polarity proxy). Training molecules get theirs from their SMILES (or, without SMILES,
from the bonds perceived on their conformers); a generated molecule's composition is read from its
atom types, its rings and TPSA from the molecule RDKit sanitises (NaN when it does not).

Files: ``noise2data data properties`` writes ``.npz`` with ``properties: (M, k)`` and ``names: (k,)``;
a training run reads one row per molecule of its data (``--cond-file``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.arrays import open_npz
from ..errors import UserError, require
from .chemistry import ELEMENTS
from .data import MoleculeSet

HEAVY = ("C", "N", "O", "F")
PROPERTIES = (*HEAVY, "rings", "tpsa")


def _descriptors(mol) -> tuple[float, float]:  # noqa: ANN001 - a sanitised RDKit Mol
    from rdkit.Chem import rdMolDescriptors

    return float(rdMolDescriptors.CalcNumRings(mol)), float(rdMolDescriptors.CalcTPSA(mol))


def composition(types: Tensor) -> list[float]:
    """Heavy atoms of each element in :data:`HEAVY` from atom types ``(n,)``."""
    return [float((types == ELEMENTS.index(e)).sum()) for e in HEAVY]


def smiles_properties(smiles: str) -> list[float]:
    """The property vector of a SMILES string."""
    Chem = require("rdkit.Chem", "mol", "molecule properties")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise UserError(f"RDKit cannot parse the SMILES {smiles!r}")
    counts = [float(sum(a.GetSymbol() == e for a in mol.GetAtoms())) for e in HEAVY]
    return counts + list(_descriptors(mol))


def conformer_properties(positions: Tensor, types: Tensor) -> list[float]:
    """The property vector of a 3-D molecule (bonds from distances); rings and TPSA NaN when invalid."""
    Chem = require("rdkit.Chem", "mol", "molecule properties")
    from .metrics import to_rdkit

    mol = to_rdkit(positions, types)
    try:
        Chem.SanitizeMol(mol)
        rest = list(_descriptors(mol))
    except Exception:  # an impossible valence: composition is still known
        rest = [float("nan"), float("nan")]
    return composition(types) + rest


def dataset_properties(data: MoleculeSet) -> Tensor:
    """``(M, k)`` properties of a molecule set: from its SMILES when it has them, else from its conformers."""
    if data.smiles is not None:
        return torch.tensor([smiles_properties(s) for s in data.smiles], dtype=torch.float64)
    return torch.tensor([conformer_properties(*data.molecule(i)) for i in range(len(data))], dtype=torch.float64)


def save_properties(path: str | Path, values: Tensor) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, properties=values.numpy(), names=np.array(PROPERTIES))
    return path


def read_properties(path: str | Path, n_molecules: int) -> Tensor:
    """``(M, k)`` properties for a set of ``n_molecules``; one line of error for anything else."""
    z, keys = open_npz(path, "property file (write one with 'noise2data data properties')")
    if "properties" not in keys:
        raise UserError(f"{path} holds no 'properties' array: write it with 'noise2data data properties --molecules "
                        "FILE --out FILE'")
    values = torch.from_numpy(np.asarray(z["properties"], dtype=np.float64))
    if values.ndim != 2 or len(values) != n_molecules:
        raise UserError(f"{path} has properties of shape {tuple(values.shape)}; the molecules need one row each, "
                        f"({n_molecules}, k): compute them from the same molecule file")
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).any(1).nonzero()[0])
        raise UserError(f"{path}: row {bad} has NaN/Inf properties; drop those molecules or fix the values")
    if "names" in keys and tuple(z["names"].tolist()) != PROPERTIES[: values.shape[1]]:
        raise UserError(f"{path} names its columns {z['names'].tolist()}; this version conditions on "
                        f"{list(PROPERTIES)}")
    return values


def parse_composition(spec: str) -> dict[str, int]:
    """``"C6N1O1"`` or ``"C6,N1,O1,H8"`` -> ``{"C": 6, "N": 1, "O": 1, "H": 8}`` (elements of QM9 only)."""
    import re

    parts = re.findall(r"([A-Z][a-z]?)(\d+)", spec.replace(",", ""))
    if not parts or "".join(f"{e}{k}" for e, k in parts) != spec.replace(",", ""):
        raise UserError(f"bad composition {spec!r}: write element counts such as C6N1O1 (H optional: C6N1O1H13)")
    out: dict[str, int] = {}
    for element, count in parts:
        if element not in ELEMENTS:
            raise UserError(f"element {element} in composition {spec!r} is not one this model knows: {list(ELEMENTS)}")
        if element in out:
            raise UserError(f"element {element} appears twice in composition {spec!r}")
        out[element] = int(count)
    if sum(v for e, v in out.items() if e != "H") < 1:
        raise UserError(f"composition {spec!r} has no heavy atom")
    return out


def property_errors(requested: Tensor, achieved: Tensor) -> dict:
    """Mean absolute error per property over the samples where both are finite, and the share of samples
    whose heavy-atom composition is exactly the requested one."""
    out = {}
    for j, name in enumerate(PROPERTIES[: requested.shape[1]]):
        ok = torch.isfinite(requested[:, j]) & torch.isfinite(achieved[:, j])
        out[f"mae_{name}"] = float((requested[ok, j] - achieved[ok, j]).abs().mean()) if ok.any() else None
    k = len(HEAVY)
    out["exact_composition"] = float((requested[:, :k] == achieved[:, :k]).all(1).double().mean())
    out["n"] = len(requested)
    return out
