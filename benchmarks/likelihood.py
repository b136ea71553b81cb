"""Exact log-likelihood of trained flows: NLL of held-out points beside the exact value where known.

For each task a default MLP (256 x 4) is trained with flow matching (condot path), then the NLL
of held-out points is computed through the probability-flow ODE with several solvers and both
divergences (exact trace, Hutchinson with one Rademacher probe), with the time taken and NFE:

- ``gmm``: a 2-D mixture of three Gaussians; the exact NLL of the same points is known, and
  model NLL - exact NLL estimates KL(p_data || p_model) >= 0 (up to the standard error);
- ``checkerboard``: uniform on 8 squares of total area 32, exact NLL = log 32 = 3.4657 nats;
- ``moons``: no closed form (reported alone);
- ``digits``: scikit-learn's 8x8 digits (17 grey levels), trained on 1,437 images with uniform
  dequantisation, scored on the 360 others in dequantised bits/dim (an upper bound on the
  discrete model's bits/dim; 4.09 = log2(17) is a uniform model).

    python benchmarks/likelihood.py                      # all tasks
    python benchmarks/likelihood.py --tasks gmm --steps 2000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch

from noise2data import __version__
from noise2data.data import Standardizer, load_data
from noise2data.data.images import load_digits_images
from noise2data.evaluation import nll_summary
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.run import Run
from noise2data.training import TrainConfig, train

GMM = {"means": [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]],
       "covs": [[[0.5, 0.2], [0.2, 0.3]], [[0.3, -0.1], [-0.1, 0.6]], [[0.8, 0.0], [0.0, 0.1]]],
       "weights": [0.3, 0.5, 0.2]}
SETTINGS = (("rk4", 16, "exact"), ("rk4", 64, "exact"), ("dopri5", None, "exact"), ("rk4", 64, "hutchinson"))


def trained_run(data: torch.Tensor, args: argparse.Namespace, *, standardize: str = "feature",
                dequantize: float = 0.0) -> tuple[Run, float]:
    torch.manual_seed(args.seed)
    stats = Standardizer.fit(data, standardize)
    shape = tuple(data.shape[1:])
    model = MLP(MLPConfig(data_shape=shape, hidden=args.hidden, depth=args.depth))
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, device="cpu", seed=args.seed,
                      log_every=args.steps, dequantize=dequantize)
    start = time.perf_counter()
    res = train(model, make_path("condot"), stats.forward(data), cfg, standardizer=stats, progress=False)
    run = Run(run_dir=Path("."), config={"model": {"data_shape": list(shape)}, "train": cfg.to_dict()},
              model=res.ema.eval(), path=make_path("condot"), prediction="velocity", standardizer=stats,
              step=res.step, device=torch.device("cpu"))
    return run, time.perf_counter() - start


def score(run: Run, x: torch.Tensor, spec: str | None, dequantize: float = 0.0) -> list[dict]:
    rows = []
    for solver, steps, div in SETTINGS:
        r = nll_summary(run, x, spec, solver=solver, steps=steps or 64, divergence=div, dequantize=dequantize)
        rows.append(r | {"steps": steps})
    return rows


def run_task(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    if name == "digits":
        d = load_digits_images()
        flat = d.images.flatten(1)
        held = torch.arange(len(flat)) % 5 == 0
        run, secs = trained_run(flat[~held], args, standardize="global", dequantize=1.0)
        return {"train_seconds": secs, "n_train": int((~held).sum()), "rows": score(run, flat[held], None, 1.0)}
    spec = name
    if name == "gmm":
        (tmp / "gmm.json").write_text(json.dumps(GMM))
        spec = f"gmm:{tmp / 'gmm.json'}"
    run, secs = trained_run(load_data(spec, n=100_000, seed=args.seed), args)
    held_out = load_data(spec, n=args.n, seed=10_000 + args.seed)
    return {"train_seconds": secs, "n_train": 100_000, "rows": score(run, held_out, spec)}


def print_task(name: str, res: dict, args: argparse.Namespace) -> None:
    print(f"\n{name}: trained {args.steps} steps in {res['train_seconds']:.0f} s on {res['n_train']} points")
    print(f"{'solver':<8} {'steps':>5} {'divergence':<11} {'NLL (nats)':>11} {'+- se':>7} {'bits/dim':>9} "
          f"{'exact NLL':>10} {'NFE':>5} {'seconds':>8}")
    for r in res["rows"]:
        exact = f"{r['true_nll_nats']:10.4f}" if r["true_nll_nats"] is not None else f"{'-':>10}"
        print(f"{r['solver']:<8} {r['steps'] or '-':>5} {r['divergence']:<11} {r['nll_nats']:11.4f} {r['nll_se']:7.4f} "
              f"{r['bits_per_dim']:9.4f} {exact} {r['nfe']:5d} {r['seconds']:8.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="gmm,checkerboard,moons,digits")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--n", type=int, default=2000, help="held-out points (2-D tasks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/likelihood.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = {"noise2data": __version__, "torch": torch.__version__, "machine": platform.machine(),
           "threads": args.threads, "args": vars(args), "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            out["tasks"][name] = run_task(name, args, Path(tmp))
            print_task(name, out["tasks"][name], args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}; log2(17) = {math.log2(17):.4f} bits/dim is a uniform model of the digits")


if __name__ == "__main__":
    main()
