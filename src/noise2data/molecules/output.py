"""Generated molecules out: SDF (RDKit, bonds from distances), multi-XYZ, .npz, and a 3-D picture."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from torch import Tensor

from ..errors import UserError, require
from .chemistry import ELEMENTS, bond_orders
from .data import MoleculeSet, to_xyz
from .metrics import to_rdkit

SUFFIXES = (".sdf", ".xyz", ".npz")
COLOURS = {"H": "#d9d9d9", "C": "#404040", "N": "#3050f8", "O": "#ff0d0d", "F": "#90e050"}


def write_molecules(molecules: list[tuple[Tensor, Tensor]], path: str | Path) -> Path:
    """Write ``(positions (n, 3), types (n,))`` pairs by the file's suffix: .sdf, .xyz or .npz."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise UserError(f"molecules are written as {', '.join(SUFFIXES)}; got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xyz":
        path.write_text("".join(to_xyz(p, t, f"sample {i}") for i, (p, t) in enumerate(molecules)))
    elif path.suffix == ".sdf":
        Chem = require("rdkit.Chem", "mol", "SDF output")
        blocks = []
        for i, (p, t) in enumerate(molecules):
            mol = to_rdkit(p, t)
            mol.SetProp("_Name", f"sample {i}")
            blocks.append(Chem.MolToMolBlock(mol, kekulize=False) + "$$$$\n")  # unsanitised: as generated
        path.write_text("".join(blocks))
    else:
        MoleculeSet.from_molecules(molecules).save(path)
    return path


def plot_molecules(molecules: list[tuple[Tensor, Tensor]], out: str | Path | BinaryIO, n_show: int = 6,
                   ) -> str | Path | BinaryIO:
    """A 3-D scatter of up to ``n_show`` molecules: atoms coloured by element, bonds as lines."""
    mpl = require("matplotlib", "plot", "plotting")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    show = molecules[:n_show]
    cols = min(3, len(show))
    rows = -(-len(show) // cols)
    fig = plt.figure(figsize=(3.2 * cols, 3.2 * rows))
    for k, (p, t) in enumerate(show):
        ax = fig.add_subplot(rows, cols, k + 1, projection="3d")
        order = bond_orders(p, t)
        for i, j in (order > 0).triu(1).nonzero().tolist():
            ax.plot(*zip(p[i].tolist(), p[j].tolist(), strict=True), color="k", lw=0.6 * int(order[i, j]) + 0.4)
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=[COLOURS[ELEMENTS[int(e)]] for e in t], s=[40 if e else 15 for e in t],
                   edgecolors="k", linewidths=0.3, depthshade=False)
        formula = "".join(f"{e}{int((t == i).sum())}" for i, e in enumerate(ELEMENTS) if (t == i).any())
        ax.set_title(formula, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=100, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return out
