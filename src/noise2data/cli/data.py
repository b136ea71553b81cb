"""The ``data`` command: build datasets that need work before training (``qm9``: 3-D conformers;
``properties``: RDKit properties of molecules, to condition on; ``moving-mnist``: clips of MNIST digits in
motion)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..errors import UserError
from .common import positive_int


def add_data_command(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="build datasets (qm9: 3-D conformers from SMILES with RDKit; moving-mnist: clips)")
    dsub = d.add_subparsers(dest="dataset", required=True, metavar="DATASET", parser_class=type(d))
    q = dsub.add_parser("qm9", help="QM9 SMILES -> conformers (ETKDGv3 + MMFF94) in a molecule .npz")
    q.add_argument("--smiles", required=True, help="SMILES file, one per line (e.g. qm9_smiles.txt)")
    q.add_argument("--exclude", help="QM9's list of uncharacterised molecules (1-based indices) to leave out "
                   "(default: uncharacterized.txt beside the SMILES file, when present)")
    q.add_argument("--n", type=positive_int, help="a random subset of this many molecules (default: all)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workers", type=positive_int, help="processes (default: the CPU count)")
    q.add_argument("--out", required=True, help="output .npz")
    pr = dsub.add_parser("properties", help="RDKit properties of a molecule file, one row per molecule, to condition "
                         "on (train --cond-file): heavy atoms of C, N, O, F, rings, TPSA")
    pr.add_argument("--molecules", required=True, help="molecule file (.npz from 'data qm9', .xyz or .sdf)")
    pr.add_argument("--out", required=True, help="output .npz (properties, names)")
    m = dsub.add_parser("moving-mnist", help="Moving MNIST clips from MNIST digits (Srivastava et al. 2015)")
    m.add_argument("--mnist", required=True, help="folder of the MNIST IDX files")
    m.add_argument("--split", default="train", choices=["train", "test"], help="digits of this split (default train)")
    m.add_argument("--n", type=positive_int, default=10000, help="clips (default 10000)")
    m.add_argument("--frames", type=positive_int, default=20, help="frames per clip (default 20)")
    m.add_argument("--size", type=int, default=64, help="64 (the usual canvas) or 32 (rendered at 64, halved)")
    m.add_argument("--digits", type=positive_int, default=1, help="digits per clip (default 1)")
    m.add_argument("--speed", type=float, default=3.0, help="pixels per frame at 64 px (default 3)")
    m.add_argument("--color", action="store_true", help="RGB clips: each digit a random saturated colour")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="output .npz (videos, labels, centers)")


def build_data(args: argparse.Namespace) -> int:
    if not args.out.endswith(".npz"):
        raise UserError(f"--out must name a .npz file, got {args.out}")
    commands = {"moving-mnist": moving_mnist_command, "qm9": qm9_command, "properties": properties_command}
    return commands[args.dataset](args)


def properties_command(args: argparse.Namespace) -> int:
    from ..molecules.data import MoleculeSet
    from ..molecules.properties import PROPERTIES, dataset_properties, save_properties

    data = MoleculeSet.read(args.molecules)
    t0 = time.perf_counter()
    values = dataset_properties(data)
    save_properties(args.out, values)
    means = ", ".join(f"{n} {float(v):.2f}" for n, v in zip(PROPERTIES, values.mean(0), strict=True))
    print(f"wrote {args.out}: {len(values)} x {values.shape[1]} properties from "
          f"{'SMILES' if data.smiles is not None else 'conformers'} in {time.perf_counter() - t0:.0f} s "
          f"(means: {means})", file=sys.stderr)
    return 0


def moving_mnist_command(args: argparse.Namespace) -> int:
    from ..data.images import load_mnist
    from ..video.moving_mnist import moving_mnist

    digits = load_mnist(args.mnist, args.split)
    t0 = time.perf_counter()
    mm = moving_mnist(digits.images[:, 0].numpy().astype("uint8"), digits.labels.numpy(), args.n, frames=args.frames,
                      size=args.size, digits=args.digits, speed=args.speed, color=args.color, seed=args.seed)
    mm.save(args.out)
    print(f"wrote {args.out}: {args.n} clips {mm.videos.shape[1:]} of MNIST {args.split} digits in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def qm9_command(args: argparse.Namespace) -> int:
    from ..molecules.build import build_conformers, qm9_subset

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
