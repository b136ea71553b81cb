"""3-D conformers from SMILES with RDKit: ETKDGv3 embedding, then MMFF94 optimisation.

Without the force-field step the geometries are far from QM9's quality (bond lengths off by
enough to break the distance-based bond perception that the metrics use), so it is not optional.
Molecules are built in parallel processes with a progress bar; those that fail to parse, embed
or optimise, or hold elements outside :data:`ELEMENTS`, are skipped and counted.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import torch

from ..errors import UserError, require
from .chemistry import ELEMENTS
from .data import MoleculeSet


@dataclass(frozen=True)
class BuildReport:
    asked: int
    built: int
    failed: dict[str, int]

    def line(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in self.failed.items() if v) or "none"
        return f"built {self.built} of {self.asked} molecules (skipped: {why})"


def read_smiles(path: str | Path) -> list[str]:
    """One SMILES per line (the first whitespace-separated field)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SMILES file not found: {path}")
    return [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]


def read_excluded(path: str | Path) -> set[int]:
    """1-based database indices of QM9's uncharacterised molecules (rows of numbers after a header)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"exclusion list not found: {path}")
    out = set()
    for ln in path.read_text().splitlines():
        m = re.match(r"\s*(\d+)\s+\S", ln)
        if m:
            out.add(int(m.group(1)))
    return out


def conformer(item: tuple[str, int]) -> tuple[str, list[list[float]] | None, list[int] | None, str]:
    """``(smiles, seed) -> (canonical smiles, positions, types, status)``; status 'ok' or why it failed."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    RDLogger.DisableLog("rdApp.*")
    smiles, seed = item
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return smiles, None, None, "parse"
    canon = Chem.MolToSmiles(mol)
    mol = Chem.AddHs(mol)
    if any(a.GetSymbol() not in ELEMENTS for a in mol.GetAtoms()):
        return canon, None, None, "elements"
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        params.useRandomCoords = True  # strained cages often embed from random starting coordinates
        if AllChem.EmbedMolecule(mol, params) != 0:
            return canon, None, None, "embed"
    try:
        if AllChem.MMFFOptimizeMolecule(mol, maxIters=2000) == -1:
            return canon, None, None, "mmff"
    except (ValueError, RuntimeError):
        return canon, None, None, "mmff"
    pos = mol.GetConformer().GetPositions()
    pos = pos - pos.mean(0)
    return canon, pos.tolist(), [ELEMENTS.index(a.GetSymbol()) for a in mol.GetAtoms()], "ok"


def build_conformers(smiles: Sequence[str], *, seed: int = 0, workers: int | None = None,
                     progress: bool = True) -> tuple[MoleculeSet, BuildReport]:
    """Conformers of every SMILES (centred at the origin), padded to the largest molecule."""
    require("rdkit", "mol", "building conformers")
    items = [(s, seed + i) for i, s in enumerate(smiles)]
    workers = workers or max(1, min(len(items) // 50, torch.get_num_threads()))
    results = []
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc="conformers", unit="mol", file=sys.stderr)
        except ImportError:
            pass
    # fork where the platform has it: the workers only run RDKit, and a forked pool works from scripts without a
    # __main__ guard and from notebooks and stdin, where spawn would re-run or cannot find the caller's code
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    with get_context(method).Pool(workers) if workers > 1 else _Serial() as pool:
        for r in pool.imap(conformer, items, chunksize=16):
            results.append(r)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    failed = {k: sum(r[3] == k for r in results) for k in ("parse", "elements", "embed", "mmff")}
    ok = [r for r in results if r[3] == "ok"]
    if not ok:
        raise UserError(f"no molecule could be built from {len(items)} SMILES ({failed})")
    mols = [(torch.tensor(p), torch.tensor(t)) for _, p, t, _ in ok]
    return MoleculeSet.from_molecules(mols, [r[0] for r in ok]), BuildReport(len(items), len(ok), failed)


class _Serial:
    """A stand-in for a pool of one: imap in this process."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap(self, fn, items, chunksize: int = 1):  # noqa: ANN001, ANN201
        return map(fn, items)


def qm9_subset(smiles_file: str | Path, n: int | None, *, exclude_file: str | Path | None = None,
               seed: int = 0) -> list[str]:
    """A seeded random subset of ``n`` QM9 SMILES (all when None), without the excluded indices."""
    smiles = read_smiles(smiles_file)
    excluded = read_excluded(exclude_file) if exclude_file else set()
    keep = [s for i, s in enumerate(smiles, start=1) if i not in excluded]
    if n is not None and n < len(keep):
        perm = torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed))[:n]
        keep = [keep[int(i)] for i in perm]
    return keep
