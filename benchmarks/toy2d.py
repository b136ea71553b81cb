"""Quality against NFE on 2-D toys: exact W2 (POT, 4000 vs 4000) beside the noise floor.

For each dataset: train the default MLP with a fixed budget, then for every fixed-step solver and
NFE in {1, 2, 4, 8, 16, 32, 64} (steps = NFE / stages), draw R independent sets of 4000 samples
and compute the exact W2 of set i to reference data set i (R independent 4000-point sets); the cell
is the mean over the R pairs. dopri5 reports the NFE it used. The noise floor is the same
statistic with fresh data in place of samples: W2 between R independent 4000-point data sets and
the same R references. A single W2 at n = 4000 varies by +-25 % from draw to draw (on the
checkerboard through the random share of mass in each square; for a model, through the few samples
its rarely-trained tails put off the data), so neither a single pair nor a single draw is trusted.

    python benchmarks/toy2d.py                       # checkerboard and moons, 8000 steps each
    python benchmarks/toy2d.py --datasets moons --steps 2000 --coupling ot
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from noise2data import __version__
from noise2data.couplings import COUPLINGS
from noise2data.data import Standardizer, load_data
from noise2data.fields import model_field
from noise2data.metrics import w2_exact
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.samplers import ODE_SOLVERS, TABLEAUX, make_grid, steps_for_nfe
from noise2data.training import TrainConfig, train

NFES = (1, 2, 4, 8, 16, 32, 64)


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    data = load_data(name, n=100_000, seed=args.seed)
    stats = Standardizer.fit(data)
    path = make_path(args.path)
    model = MLP(MLPConfig(data_shape=(2,), hidden=args.hidden, depth=args.depth))
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, coupling=args.coupling,
                      device="cpu", log_every=max(1, args.steps // 10), seed=args.seed)
    t0 = time.perf_counter()
    res = train(model, path, stats.forward(data), cfg, progress=False)
    train_s = time.perf_counter() - t0

    n, R = args.n, args.refs
    refs = [load_data(name, n=n, seed=1000 + i) for i in range(R)]
    fresh = [load_data(name, n=n, seed=2000 + i) for i in range(R)]
    floors = [w2_exact(f, r) for f, r in zip(fresh, refs, strict=True)]

    def w2_mean(xs: list[torch.Tensor]) -> tuple[float, list[float]]:
        vals = [w2_exact(stats.inverse(x), r) for x, r in zip(xs, refs, strict=True)]
        return statistics.mean(vals), vals

    field = model_field(res.ema, path, "velocity")
    gen = torch.Generator().manual_seed(args.seed + 7)
    x0s = [torch.randn(n, 2, generator=gen) for _ in range(R)]  # the same draws for every solver
    rows = []
    with torch.inference_mode():
        for solver in TABLEAUX:
            for nfe in NFES:
                steps = steps_for_nfe(solver, nfe)
                if steps is None:
                    continue
                grid = make_grid(args.grid, path, steps)
                w2, vals = w2_mean([ODE_SOLVERS[solver](field, x0, grid).x for x0 in x0s])
                rows.append({"solver": solver, "nfe": nfe, "w2": w2, "w2_values": vals})
        outs = [ODE_SOLVERS["dopri5"](field, x0, make_grid("uniform", path, 1), rtol=1e-5, atol=1e-5)
                for x0 in x0s]
        w2, vals = w2_mean([o.x for o in outs])
        rows.append({"solver": "dopri5", "nfe": round(statistics.mean(o.nfe for o in outs)), "w2": w2,
                     "w2_values": vals})
    return {
        "dataset": name, "train_steps": args.steps, "train_seconds": train_s,
        "steps_per_sec": res.steps_per_sec, "final_loss": res.log[-1][1],
        "floor_mean": statistics.mean(floors), "floor_sd": statistics.stdev(floors), "floor_values": floors,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    floor = result["floor_mean"]
    print(f"\n{result['dataset']}: {result['train_steps']} steps in {result['train_seconds']:.0f} s "
          f"({result['steps_per_sec']:.1f} steps/s); noise floor W2 = {floor:.4f} (sd {result['floor_sd']:.4f}); "
          "cells: W2 (ratio to the floor)")
    header = f"{'solver':<9}" + "".join(f"{'NFE ' + str(n):>16}" for n in NFES)
    print(header)
    for solver in TABLEAUX:
        cells = []
        for nfe in NFES:
            row = next((r for r in result["rows"] if r["solver"] == solver and r["nfe"] == nfe), None)
            cells.append(f"{row['w2']:.4f} ({row['w2'] / floor:.2f}x)" if row else "-")
        print(f"{solver:<9}" + "".join(f"{c:>16}" for c in cells))
    d = next(r for r in result["rows"] if r["solver"] == "dopri5")
    print(f"{'dopri5':<9} W2 {d['w2']:.4f} ({d['w2'] / floor:.2f}x floor) at mean NFE {d['nfe']} (rtol=atol=1e-5)")
    spread = statistics.mean(statistics.stdev(r["w2_values"]) for r in result["rows"])
    print(f"(mean sd of a cell over its {len(d['w2_values'])} pairs: {spread:.4f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="checkerboard,moons")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--path", default="condot")
    p.add_argument("--coupling", default="independent", choices=list(COUPLINGS))
    p.add_argument("--grid", default="uniform", choices=["uniform", "edm"])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--refs", type=int, default=4, help="independent (sample, reference) pairs per cell (R)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="benchmarks/results/toy2d.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.datasets.split(","):
        results.append(run_dataset(name, args))
        print_table(results[-1])
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"noise2data": __version__, "torch": torch.__version__, "machine": platform.machine(),
            "threads": args.threads, "args": vars(args)}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
