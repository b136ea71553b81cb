"""How good are generated molecules? The standard metrics of 3-D molecule generation.

- **atom stability**: the share of atoms whose bond orders (from distances, see
  :mod:`.chemistry`) add up to their element's valence;
- **molecule stability**: the share of molecules all of whose atoms are stable;
- **validity**: the share of molecules that RDKit sanitises once built with those bonds;
- **uniqueness**: distinct canonical SMILES (of each valid molecule's largest fragment) among
  the valid ones;
- **novelty**: the share of unique SMILES not among the training set's, where the training
  set's SMILES are computed the same way from its conformers.

Scoring the training conformers themselves gives the ceiling to quote beside a model's numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from ..errors import require
from .chemistry import ATOMIC_NUMBERS, ELEMENTS, atom_stability, bond_orders
from .data import MoleculeSet


def to_rdkit(positions: Tensor, types: Tensor):  # noqa: ANN201 - an rdkit RWMol
    """An RDKit molecule with explicit atoms, distance-based bonds and one 3-D conformer."""
    Chem = require("rdkit.Chem", "mol", "molecule validity")
    from rdkit.Geometry import Point3D

    mol = Chem.RWMol()
    for t in types.tolist():
        mol.AddAtom(Chem.Atom(ATOMIC_NUMBERS[ELEMENTS[t]]))
    kinds = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    order = bond_orders(positions, types)
    for i, j in (order > 0).triu(1).nonzero().tolist():
        mol.AddBond(i, j, kinds[int(order[i, j])])
    conf = Chem.Conformer(len(types))
    for i, p in enumerate(positions.double().tolist()):
        conf.SetAtomPosition(i, Point3D(*p))
    mol.AddConformer(conf, assignId=True)
    return mol


def smiles_of(positions: Tensor, types: Tensor) -> str | None:
    """Canonical SMILES of the largest fragment, or None when RDKit cannot sanitise the molecule."""
    Chem = require("rdkit.Chem", "mol", "molecule validity")
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = to_rdkit(positions, types)
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises several kinds for impossible valences and aromaticity
        return None
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    largest = max(frags, key=lambda m: m.GetNumAtoms())
    try:
        return Chem.MolToSmiles(Chem.RemoveHs(largest))  # hydrogens implicit, as SMILES are usually written
    except Exception:
        return None


def molecule_metrics(molecules: Iterable[tuple[Tensor, Tensor]], reference_smiles: set[str] | None = None) -> dict:
    """The metrics of ``(positions (n, 3), types (n,))`` pairs; novelty when ``reference_smiles`` is given."""
    n_mol = n_atoms = stable_atoms = stable_mols = 0
    valid: list[str] = []
    for pos, types in molecules:
        stable = atom_stability(pos, types)
        n_mol, n_atoms = n_mol + 1, n_atoms + len(types)
        stable_atoms += int(stable.sum())
        stable_mols += bool(stable.all())
        smi = smiles_of(pos, types)
        if smi is not None:
            valid.append(smi)
    unique = set(valid)
    out = {"molecules": n_mol, "atom_stability": stable_atoms / max(n_atoms, 1),
           "molecule_stability": stable_mols / max(n_mol, 1), "validity": len(valid) / max(n_mol, 1),
           "uniqueness": len(unique) / max(len(valid), 1), "smiles": sorted(unique)}
    if reference_smiles is not None:
        out["novelty"] = len(unique - reference_smiles) / max(len(unique), 1)
    return out


def dataset_metrics(data: MoleculeSet) -> dict:
    """The same metrics on real conformers: the ceiling a model is compared with."""
    return molecule_metrics(data.molecule(i) for i in range(len(data)))


def format_metrics(rows: dict[str, dict]) -> str:
    """A table: one row per named result (e.g. 'data', 'model at step N')."""
    cols = ("atom_stability", "molecule_stability", "validity", "uniqueness", "novelty")
    lines = [f"{'':<24} {'n':>6} " + " ".join(f"{c.replace('_stability', ' stab.'):>12}" for c in cols)]
    for name, r in rows.items():
        vals = " ".join(f"{100 * r[c]:11.1f}%" if c in r else f"{'-':>12}" for c in cols)
        lines.append(f"{name:<24} {r['molecules']:6d} {vals}")
    return "\n".join(lines)
