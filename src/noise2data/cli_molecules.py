"""The CLI for molecules: ``data qm9`` builds conformers; train, sample and eval of EGNN runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .errors import UserError

EGNN_PRESETS = {"tiny": {"hidden": 64, "layers": 4}, "small": {"hidden": 128, "layers": 6},
                "base": {"hidden": 256, "layers": 9}}
TYPE_SCALE = 0.25  # one-hot types x 0.25: positions (std ~1.5 A) lead, types follow
TRAIN_SMILES = "train_smiles.json"


def add_molecule_commands(sub: argparse._SubParsersAction, positive_int) -> None:  # noqa: ANN001
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
    import os

    from .molecules.build import build_conformers, qm9_subset

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


def train_molecules(opts: dict, out: Path, resume: bool, progress: bool, device: str, cfg: dict | None) -> int:
    from .data import Standardizer
    from .molecules.data import MoleculeSet
    from .molecules.egnn import EGNN, EGNNConfig
    from .molecules.space import SizeDistribution, encode, sample_prior
    from .paths import make_path
    from .run import write_run_config
    from .training import TrainConfig, train

    if opts["model"] != "egnn":
        raise UserError(f"molecules are trained with --model egnn, not {opts['model']}")
    data = MoleculeSet.read(opts["data"][len("molecules:"):])
    x1 = encode(data, TYPE_SCALE)  # (M, N, 3 + T)
    if cfg is not None and list(x1.shape[1:]) != list(cfg["data"]["shape"]):
        raise UserError(f"{opts['data']} now holds molecules of shape {tuple(x1.shape[1:])}, the run's were "
                        f"{tuple(cfg['data']['shape'])}: resume with the same data")
    if opts["preset"] not in EGNN_PRESETS:
        raise UserError(f"unknown EGNN preset '{opts['preset']}': expected one of {', '.join(EGNN_PRESETS)}")
    mcfg = EGNNConfig(max_atoms=data.max_atoms, **EGNN_PRESETS[opts["preset"]])
    tcfg = TrainConfig(steps=opts["steps"], batch_size=opts["batch_size"], lr=opts["lr"], objective=opts["objective"],
                       lr_schedule=opts["lr_schedule"], warmup_steps=opts["warmup_steps"], seed=opts["seed"],
                       ema_decay=opts["ema_decay"], grad_clip=opts["grad_clip"], keep=opts["keep"],
                       checkpoint_every=opts["checkpoint_every"], device=device,
                       skip_nonfinite=bool(opts["skip_nonfinite"]))
    path = make_path(opts["path"])
    model = EGNN(mcfg)
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        write_run_config(out, {
            "data": {"spec": opts["data"], "shape": list(x1.shape[1:]), "n": len(data), "standardize": "none"},
            "path": path.spec(), "model": mcfg.to_dict(), "train": tcfg.to_dict(), "cli": opts,
            "molecules": {"type_scale": TYPE_SCALE, "sizes": SizeDistribution.fit(data).to_dict()},
        })
    print(f"training {sum(p.numel() for p in model.parameters()):,}-parameter EGNN on {len(data)} molecules of up to "
          f"{data.max_atoms} atoms ({opts['path']} path) -> {out}", file=sys.stderr)
    result = train(model, path, x1, tcfg, run_dir=out, standardizer=Standardizer.identity(tuple(x1.shape[1:])),
                   resume=resume, progress=progress, labels=data.mask,
                   noise=lambda x, mask, g: sample_prior(mask, generator=g, dtype=x.dtype))
    final = result.log[-1][1] if result.log else float("nan")
    print(f"done: step {result.step}, final loss {final:.4f}, {result.steps_per_sec:.1f} steps/s", file=sys.stderr)
    return 0


def sample_molecule_run(args: argparse.Namespace, run) -> int:  # noqa: ANN001
    from .molecules.output import SUFFIXES, plot_molecules, write_molecules
    from .molecules.sampling import sample_molecules

    if Path(args.out).suffix not in SUFFIXES:
        raise UserError(f"a molecule run writes {', '.join(SUFFIXES)}; got --out {args.out}")
    if args.label is not None or args.condition is not None or args.grid_per_class or args.sde:
        raise UserError("molecule runs sample with an ODE solver, without labels, conditions or grids")
    t0 = time.perf_counter()
    mols = sample_molecules(run, args.n, solver=args.solver, steps=args.steps, seed=args.seed,
                            batch_size=args.batch_size or 500)
    write_molecules(mols, args.out)
    print(f"wrote {args.out}: {len(mols)} molecules ({args.solver}, {args.steps} steps, step {run.step}, "
          f"{time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if args.plot:
        plot_molecules(mols, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def training_smiles(run, data=None) -> set[str]:  # noqa: ANN001
    """SMILES of the run's training conformers (``data``, read from the run's file when None), perceived the
    way samples are (cached in the run)."""
    from .molecules.data import MoleculeSet
    from .molecules.metrics import dataset_metrics

    cache = Path(run.run_dir) / TRAIN_SMILES
    if cache.is_file():
        return set(json.loads(cache.read_text()))
    data = data if data is not None else MoleculeSet.read(run.config["data"]["spec"][len("molecules:"):])
    smiles = dataset_metrics(data)["smiles"]
    cache.write_text(json.dumps(smiles))
    return set(smiles)


def eval_molecule_run(args: argparse.Namespace, run) -> int:  # noqa: ANN001
    from .molecules.data import MoleculeSet
    from .molecules.metrics import dataset_metrics, format_metrics, molecule_metrics
    from .molecules.sampling import sample_molecules

    t0 = time.perf_counter()
    mols = sample_molecules(run, args.n, solver=args.solver, steps=args.steps, seed=args.seed)
    secs = time.perf_counter() - t0
    data = MoleculeSet.read(run.config["data"]["spec"][len("molecules:"):])
    res = molecule_metrics(mols, training_smiles(run, data))
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[:args.n]
    real = dataset_metrics(data.subset(idx))
    rows = {"data (training conformers)": real, f"model, step {run.step}": res}
    out = {"run": str(run.run_dir), "step": run.step, "n": args.n, "sampler": {"solver": args.solver,
           "steps": args.steps, "seconds": secs}, "metrics": {k: {m: v for m, v in r.items() if m != "smiles"}
                                                              for k, r in rows.items()}}
    print(json.dumps(out) if args.json else format_metrics(rows))
    target = Path(args.out) if args.out else Path(run.run_dir) / "eval.json"
    target.write_text(json.dumps(out, indent=2))
    return 0
