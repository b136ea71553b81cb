"""The ``data`` command: build datasets that need work before training (``qm9``: 3-D conformers)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..errors import UserError
from .common import positive_int


def add_data_command(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="build datasets (qm9: 3-D conformers from SMILES with RDKit)")
    dsub = d.add_subparsers(dest="dataset", required=True, metavar="DATASET", parser_class=type(d))
    q = dsub.add_parser("qm9", help="QM9 SMILES -> conformers (ETKDGv3 + MMFF94) in a molecule .npz")
    q.add_argument("--smiles", required=True, help="SMILES file, one per line (e.g. qm9_smiles.txt)")
    q.add_argument("--exclude", help="QM9's list of uncharacterised molecules (1-based indices) to leave out "
                   "(default: uncharacterized.txt beside the SMILES file, when present)")
    q.add_argument("--n", type=positive_int, help="a random subset of this many molecules (default: all)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workers", type=positive_int, help="processes (default: the CPU count)")
    q.add_argument("--out", required=True, help="output .npz")


def build_data(args: argparse.Namespace) -> int:
    from ..molecules.build import build_conformers, qm9_subset

    if not args.out.endswith(".npz"):
        raise UserError(f"--out must name a .npz file, got {args.out}")
    exclude = args.exclude
    if exclude is None and (Path(args.smiles).parent / "uncharacterized.txt").is_file():
        exclude = Path(args.smiles).parent / "uncharacterized.txt"
    smiles = qm9_subset(args.smiles, args.n, exclude_file=exclude, seed=args.seed)
    t0 = time.perf_counter()
    data, report = build_conformers(smiles, seed=args.seed, workers=args.workers or os.cpu_count())
    data.save(args.out)
    secs = time.perf_counter() - t0
    print(f"{report.line()} in {secs:.0f} s ({report.built / secs:.0f}/s); excluded "
          f"{'the list in ' + str(exclude) if exclude else 'nothing'}; wrote {args.out} "
          f"{tuple(data.positions.shape)}", file=sys.stderr)
    return 0
