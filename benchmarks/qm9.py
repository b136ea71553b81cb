"""QM9 on a CPU budget: build conformers, train an EGNN per recipe, score samples beside the data.

1. Builds ``--n`` QM9 conformers (RDKit ETKDGv3 + MMFF94, uncharacterised molecules excluded)
   with ``noise2data data qm9`` (cached in the output folder).
2. For each recipe row (``--rows``; the pieces switched on in turn, see ``ROWS``): measures the
   recipe's own step time (the loop's rate over 60 steps after a warm-up run; all rows first, while
   the machine is otherwise idle), then trains ``noise2data train`` for as many steps as fit in
   ``--minutes`` of compute.
3. Samples ``--eval-n`` molecules from each row's final EMA weights (atom counts from the training
   histogram; midpoint rule, ``--nfe`` evaluations) and prints atom/molecule stability, validity,
   uniqueness and novelty beside the same metrics on ``--eval-n`` training conformers (the ceiling);
   with ``--nfe-table`` the last row is also sampled at each of those budgets.

    python benchmarks/qm9.py --smiles ../shared/data/qm9/qm9_smiles.txt --minutes 30 --nfe-table 20,50,100
    python benchmarks/qm9.py --smiles ... --minutes 6 --rows plain,bands,bands+ot,bands+data,all,all+props --out DIR
    python benchmarks/qm9.py --smiles ... --minutes 6 --rows bands+data,bands+data+rbf,bands+data+sc,bands+data+rbf+sc

On a GPU (``--device cuda``) each row trains for ``--minutes`` of wall clock (``train --minutes``: the clock
ends the run and drives the learning rate's cosine) instead of steps from a measured step time:

    python benchmarks/qm9.py --smiles ... --device cuda --preset small --minutes 10 --threads 8

On a machine slowed by other tenants, ``--calibrate bands+data=0.103`` counts compute in the minutes of
the idle machine the recorded runs had (its bands+data step took 0.103 s).

``bands+data+rbf+sc`` is the recipe ``train`` uses by default for molecules (chosen at the 30-minute budget).

Time only this: two PyTorch jobs on 2 cores slow each other down many times over.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from noise2data.cli import main as cli
from noise2data.molecules.data import MoleculeSet
from noise2data.molecules.metrics import dataset_metrics, format_metrics, molecule_metrics
from noise2data.molecules.modality import training_smiles
from noise2data.molecules.property_errors import format_property_errors, property_error_table, property_requests
from noise2data.molecules.sampling import sample_molecules
from noise2data.run import load_run

COLS = ("atom_stability", "molecule_stability", "validity", "uniqueness", "novelty")
PLAIN = ["--size-bands", "1", "--coupling", "independent", "--objective", "velocity", "--time-dist", "uniform",
         "--rbf", "0", "--no-self-condition", "--position-weight", "uniform"]
ROWS = {  # each piece of the recipe switched on in turn (later flags win)
    "plain": PLAIN,  # random batches padded to 29 atoms, independent noise, velocity, uniform t
    "bands": PLAIN + ["--size-bands", "8"],  # batches of one size band: the network computes on real atoms
    "bands+ot": PLAIN + ["--size-bands", "8", "--coupling", "ot"],  # + noise permuted and rotated onto each molecule
    "bands+data": PLAIN + ["--size-bands", "8", "--objective", "data", "--time-dist", "beta:2,1"],
    "all": PLAIN + ["--size-bands", "8", "--coupling", "ot", "--objective", "data", "--time-dist", "beta:2,1"],
}
ROWS["bands+data+rbf"] = ROWS["bands+data"] + ["--rbf", "16"]  # + radial basis functions of pair distances
ROWS["bands+data+sc"] = ROWS["bands+data"] + ["--self-condition"]  # + the network's own last estimate as input
ROWS["bands+data+rbf+sc"] = ROWS["bands+data+rbf"] + ["--self-condition"]
ROWS["bands+data+rbf+sc+min-snr"] = ROWS["bands+data+rbf+sc"] + ["--position-weight", "min-snr:5"]
ROWS["bands+data+rbf+sc+snr1"] = ROWS["bands+data+rbf+sc"] + ["--position-weight", "snr+1:5"]
ROWS["all+props"] = ROWS["all"]  # + --cond-file: conditioned on the molecules' RDKit properties
ROWS["bands+data+rbf+sc+min-snr+props"] = ROWS["bands+data+rbf+sc+min-snr"]  # the default recipe, conditioned
DESCRIBE = {
    "plain": "random batches, independent noise, velocity, t ~ U(0, 1)",
    "bands": "+ batches from 8 size bands",
    "bands+ot": "+ noise aligned to each molecule (Hungarian + Kabsch)",
    "bands+data": "bands + data prediction (MSE + CE on types), t ~ Beta(2, 1)",
    "bands+data+rbf": "bands+data + 16 radial basis functions of each distance",
    "bands+data+sc": "bands+data + self-conditioning",
    "bands+data+rbf+sc": "bands+data + radial basis functions + self-conditioning",
    "bands+data+rbf+sc+min-snr": "+ position error weighted by min(SNR, 5) (Min-SNR)",
    "bands+data+rbf+sc+snr1": "+ position error weighted by min(SNR + 1, 5)",
    "all": "bands + aligned noise + data prediction + Beta(2, 1)",
    "all+props": "all + conditioned on properties (C, N, O, F, rings, TPSA; 10% dropped)",
    "bands+data+rbf+sc+min-snr+props": "the default recipe conditioned on properties (10% dropped)",
}


def train_flags(npz: Path, args: argparse.Namespace, row: str) -> list[str]:
    props = ["--cond-file", str(properties_file(npz))] if row.endswith("+props") else []
    return ["train", "--data", f"molecules:{npz}", "--model", "egnn", "--preset", args.preset, "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed), "--device", args.device,
            "--no-progress", *ROWS[row], *props]


def properties_file(npz: Path) -> Path:
    out = npz.with_name(npz.stem + "_properties.npz")
    if not out.exists() and cli(["data", "properties", "--molecules", str(npz), "--out", str(out)]):
        raise SystemExit(2)
    return out


def property_table(run_dir: Path, npz: Path, n: int, nfe: int, device: str) -> dict:
    """Property errors of samples asked for the properties of ``n`` training molecules: unconditional, with
    the condition at guidance 1 and 2, and with the heavy-atom composition as a hard constraint."""
    requests = property_requests(MoleculeSet.load(npz), n)
    return property_error_table(load_run(run_dir, device=device), requests, guidance=2.0, steps=nfe // 2)


def step_seconds(npz: Path, args: argparse.Namespace, row: str, scratch: Path) -> float:
    """Seconds per training step of this recipe: a 10-step run to warm up (imports, first calls), then the
    training loop's own rate over 60 steps (checkpoint writes excluded)."""
    for steps in (10, 60):
        shutil.rmtree(scratch, ignore_errors=True)
        if cli([*train_flags(npz, args, row), "--steps", str(steps), "--out", str(scratch)]):
            raise SystemExit(2)
    rate = json.loads((scratch / "metrics.jsonl").read_text().splitlines()[-1])["steps_per_sec"]
    shutil.rmtree(scratch, ignore_errors=True)
    return 1.0 / rate


def evaluate(run_dir: Path, n: int, nfe: int, ref: set[str], device: str, seed: int = 1) -> tuple[dict, float]:
    r = load_run(run_dir, device=device)
    t0 = time.perf_counter()
    mols = sample_molecules(r, n, solver="midpoint", steps=nfe // 2, seed=seed)
    return molecule_metrics(mols, ref), time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smiles", required=True, help="qm9_smiles.txt (uncharacterized.txt beside it is excluded)")
    p.add_argument("--n", type=int, default=20000, help="molecules to build")
    p.add_argument("--minutes", type=float, default=30.0, help="training compute per row")
    p.add_argument("--rows", default="bands+data+rbf+sc+min-snr",
                   help=f"comma-separated recipe rows among {', '.join(ROWS)}")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-n", type=int, default=1000)
    p.add_argument("--nfe", type=int, default=100, help="network evaluations per sample (midpoint: 2 per step)")
    p.add_argument("--nfe-table", default="", help="e.g. 20,50,100: the last row at each budget")
    p.add_argument("--requests", type=int, default=200, help="property requests for a +props row")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="training seed (samples are drawn with seed + 1); another seed "
                   "trains its own runs, run_PRESET_ROW_seedN")
    p.add_argument("--device", default="cpu", help="training and sampling device; not cpu: each row trains for "
                   "--minutes of wall clock")
    p.add_argument("--wall-clock", action="store_true", help="each row trains for --minutes of wall clock (the "
                   "default off the CPU) instead of steps from its measured step time")
    p.add_argument("--out", default="benchmarks/results/qm9")
    p.add_argument("--calibrate", metavar="ROW=SECONDS", help="compute in a reference machine's minutes: ROW's step "
                   "took SECONDS there (e.g. bands+data=0.103, the idle machine of the recorded runs); every row's "
                   "step time is today's, scaled by that ratio (for a machine slowed by other tenants)")
    args = p.parse_args()
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}: choose among {', '.join(ROWS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    npz = out / f"qm9_{args.n}.npz"
    if not npz.exists() and cli(["data", "qm9", "--smiles", args.smiles, "--n", str(args.n), "--out", str(npz)]):
        raise SystemExit(2)
    data = MoleculeSet.load(npz)
    g = torch.Generator().manual_seed(0)
    results = {"data (RDKit+MMFF conformers)": dataset_metrics(data.subset(torch.randperm(len(data), generator=g)
                                                                         [: args.eval_n]))}
    info: dict = {}
    runs = {row: out / f"run_{args.preset}_{row}{f'_seed{args.seed}' if args.seed else ''}" for row in rows}
    todo = [row for row in rows if not (runs[row] / "bench_info.json").exists()]
    clock = args.device != "cpu" or args.wall_clock  # wall-clock budgets: no step times to measure
    # every recipe's step time first, in one block: keep the machine otherwise idle during it
    secs = {row: step_seconds(npz, args, row, out / "scratch") for row in todo if not clock}
    if args.calibrate and todo and not clock:
        base, ref_seconds = args.calibrate.split("=")
        measured = secs[base] if base in secs else step_seconds(npz, args, base, out / "scratch")
        scale = float(ref_seconds) / measured
        print(f"calibration: {base} {measured:.3f} s/step here, {ref_seconds} s on the reference: x{scale:.2f}",
              file=sys.stderr)
        secs = {row: v * scale for row, v in secs.items()}
    for row in rows:
        run = runs[row]
        if row in todo:
            shutil.rmtree(run, ignore_errors=True)
            if clock:
                budget = ["--minutes", str(args.minutes), "--checkpoint-every", "2000"]
            else:
                steps = max(200, int(args.minutes * 60 / secs[row]))
                print(f"{row}: {secs[row]:.3f} s/step -> {steps} steps", file=sys.stderr)
                budget = ["--steps", str(steps), "--checkpoint-every", str(steps)]
            t0 = time.perf_counter()
            if cli([*train_flags(npz, args, row), *budget, "--keep", "1", "--out", str(run)]):
                raise SystemExit(2)
            took = time.perf_counter() - t0
            steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
            info[row] = {"step_seconds": secs[row] if not clock else took / steps, "steps": steps,
                         "train_seconds": took, "epochs": steps * args.batch_size / len(data)}
            (run / "bench_info.json").write_text(json.dumps(info[row]))
        else:
            info[row] = json.loads((run / "bench_info.json").read_text())
    ref = training_smiles(load_run(runs[rows[0]]))
    for row in rows:
        res, took = evaluate(runs[row], args.eval_n, args.nfe, ref, args.device, args.seed + 1)
        info[row]["sample_seconds"] = took
        results[row] = res
        print(f"{row}: {res['molecule_stability']:.3f} molecule stability ({took:.0f} s to sample)", file=sys.stderr)
    table = {}
    if args.nfe_table:
        last = runs[rows[-1]]
        for nfe in (int(v) for v in args.nfe_table.split(",")):
            key = f"{rows[-1]}, {nfe} NFE"
            table[key], sample_secs = evaluate(last, args.eval_n, nfe, ref, args.device, args.seed + 1)
            table[key]["seconds"] = sample_secs
    print(f"\nQM9 subset of {len(data)} molecules (RDKit ETKDGv3 + MMFF94), EGNN {args.preset}, batch "
          f"{args.batch_size}, lr {args.lr}, seed {args.seed}, on {args.device}, {args.minutes:g} min of training "
          + ("wall clock per row; " if clock else "compute per row (steps from each recipe's own measured step time"
             f"{'; calibrated ' + args.calibrate if args.calibrate else ''}); ") +
          f"{args.eval_n} samples per row, midpoint, {args.nfe} NFE; novelty "
          "against the training conformers' SMILES")
    for row in rows:
        i = info[row]
        print(f"  {row:<11} {DESCRIBE[row]}: {i['step_seconds']:.3f} s/step, {i['steps']} steps "
              f"({i['epochs']:.1f} epochs), sampling {i['sample_seconds']:.0f} s")
    print(format_metrics(results))
    if table:
        print("\nsampling budget (same weights; seconds for all samples):")
        print(format_metrics(table))
        print("  " + ", ".join(f"{k}: {v['seconds']:.0f} s" for k, v in table.items()))
    props = {}
    for row in (r for r in rows if r.endswith("+props")):
        props[row] = property_table(runs[row], npz, args.requests, args.nfe, args.device)
        print(f"\nproperty errors of {row} ({args.requests} requests: the properties of training molecules; MAE over "
              "valid samples for rings and TPSA):")
        print(format_property_errors(props[row]))
    print("published anchors (full QM9, GPU days): EDM 98.7 / 82.0 / 91.9 (atom stab. / mol. stab. / validity); "
          "QM9's DFT geometries 99.0 / 95.2 / 97.7")
    strip = {k: {c: v.get(c) for c in (*COLS, "molecules", "seconds")} for k, v in {**results, **table}.items()}
    (out / "qm9.json").write_text(json.dumps({"info": info, "preset": args.preset, "minutes": args.minutes,
                                              "calibrate": args.calibrate, "seed": args.seed,
                                              "nfe": args.nfe, "rows": strip, "properties": props}, indent=2))
    print(f"\nwrote {out / 'qm9.json'}")


if __name__ == "__main__":
    main()
