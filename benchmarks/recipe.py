"""The study behind the vector defaults: training recipe and sampler at a fixed budget, on the suite.

Phase ``train``: for every (set, recipe variant) train the MLP for ``--steps`` x ``--batch-size``
(the issue's budget: 4000 x 512) and keep the EMA weights, the standardiser and the seconds it took
under ``--dir`` (a finished cell is reused, so the phase can be stopped and restarted).
Phase ``eval``: every model sampled at 8 NFE with the default sampler, every sampler (solver x grid)
at NFE 4, 8, 16 on the baseline models; quality is the debiased energy distance with its 95 %
interval, and exact W2 beside its real-vs-real floor, each the mean over ``--refs`` independent
(samples, reference, floor sample) triples of ``--n`` points.
Phase ``oracle``: the same samplers on the exact marginal field of the Gaussian-mixture sets
(no network), separating what the ODE costs from what the model costs.
Phase ``cost``: milliseconds per training step of each coupling (independent, exact OT, OT in blocks)
at batch 512, alone on the machine, and the transport cost of each coupling against the exact optimum.
Phase ``suite``: noise2data with its defaults (``noise2data train --data SET --steps 4000``, sampled
with ``--nfe 8``) on every set of the suite, then each peer of ``recipe_peers.py`` trained for the
same wall-clock seconds, one after another, same threads, scored the same way.

    python benchmarks/recipe.py train --sets rings,gmm6,checkerboard
    python benchmarks/recipe.py eval  --sets rings,gmm6,checkerboard
    python benchmarks/recipe.py oracle
    python benchmarks/recipe.py cost
    benchmarks/.peers-venv/bin/python benchmarks/recipe.py suite --n 4000   # needs setup_peers.sh
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from noise2data import __version__, couplings
from noise2data.data import Standardizer, load_data
from noise2data.fields import CountingField, model_field
from noise2data.losses import TimeDistribution
from noise2data.metrics import ratio_interval, w2_exact, with_interval
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.samplers import ODE_SOLVERS, make_grid, solver_steps_for_nfe
from noise2data.training import TrainConfig, train

BASE_MODEL = {"hidden": 256, "depth": 4, "time_embedding": "sinusoidal", "x_octaves": 0}
BASE_TRAIN = {"lr": 2e-3, "ema_decay": 0.999, "coupling": "independent", "time_dist": "uniform", "batch_size": 512}
VARIANTS: dict[str, dict] = {  # one change each from the baseline (the defaults before this study)
    "base": {},
    "wide 512x4": {"hidden": 512},
    "deep 256x8": {"depth": 8},
    "fourier time": {"time_embedding": "fourier"},
    "logit-normal t": {"time_dist": "logit_normal"},
    "lr 1e-3": {"lr": 1e-3},
    "lr 4e-3": {"lr": 4e-3},
    "ema 0.9995": {"ema_decay": 0.9995},
    "ema 0.99": {"ema_decay": 0.99},
    "ot coupling": {"coupling": "ot"},
    "ot-blocks coupling": {"coupling": "ot-blocks"},  # blocks of couplings.BLOCK points
    "ot-blocks 32": {"coupling": "ot-blocks:32"},
    "ot-blocks 128": {"coupling": "ot-blocks:128"},
    "ot-blocks + x octaves 4": {"coupling": "ot-blocks", "x_octaves": 4},
    "ot-blocks + x octaves 6": {"coupling": "ot-blocks", "x_octaves": 6},
}
SAMPLERS = [("euler", "uniform"), ("midpoint", "uniform"), ("heun", "uniform"), ("rk4", "uniform"),
            ("heun", "edm"), ("midpoint", "edm"), ("dpm++2m", "uniform"), ("dpm++2m", "logsnr"),
            ("dpm++3m", "uniform"), ("unipc2", "uniform"), ("unipc3", "uniform")]
NFES = (4, 8, 16)


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s)


def cell_path(args: argparse.Namespace, name: str, variant: str) -> Path:
    return Path(args.dir) / f"{name}__{slug(variant)}.pt"


def build(name: str, variant: str, args: argparse.Namespace) -> tuple[MLP, TrainConfig, int]:
    v = {**BASE_MODEL, **BASE_TRAIN, **VARIANTS[variant]}
    dim = load_data(name, n=2).shape[1]
    model = MLP(MLPConfig(data_shape=(dim,), hidden=v["hidden"], depth=v["depth"], time_embedding=v["time_embedding"],
                          x_octaves=v["x_octaves"]))
    cfg = TrainConfig(steps=args.steps, batch_size=v["batch_size"], lr=v["lr"], ema_decay=v["ema_decay"],
                      coupling=v["coupling"], time_dist=TimeDistribution(v["time_dist"]), device="cpu",
                      seed=args.seed, log_every=args.steps, checkpoint_every=args.steps)
    return model, cfg, dim


def train_cell(name: str, variant: str, args: argparse.Namespace) -> dict:
    out = cell_path(args, name, variant)
    if out.exists():
        return torch.load(out, weights_only=False)["info"]
    torch.manual_seed(args.seed)
    data = load_data(name, n=100_000, seed=args.seed)
    stats = Standardizer.fit(data)
    model, cfg, _ = build(name, variant, args)
    start = time.perf_counter()
    res = train(model, make_path("condot"), stats.forward(data), cfg, progress=False)
    info = {"set": name, "variant": variant, "seconds": time.perf_counter() - start, "steps": args.steps,
            "ms_per_step": 1000 / res.steps_per_sec, "final_loss": res.log[-1][1]}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ema": res.ema.state_dict(), "mean": stats.mean, "std": stats.std, "info": info}, out)
    print(f"trained {name:<12} {variant:<16} {info['seconds']:6.1f} s  loss {info['final_loss']:.4f}", flush=True)
    return info


def load_cell(name: str, variant: str, args: argparse.Namespace):
    blob = torch.load(cell_path(args, name, variant), weights_only=False)
    model, _, dim = build(name, variant, args)
    model.load_state_dict(blob["ema"])
    stats = Standardizer(blob["mean"], blob["std"])
    return model.eval(), stats, dim, blob["info"]


def score(name: str, draw, args: argparse.Namespace) -> dict:
    """Mean energy_u (with its interval) and W2 over R triples; ``draw(i)`` gives sample set i."""
    eu, lo, hi, w2 = [], [], [], []
    for i in range(args.refs):
        ref = load_data(name, n=args.n, seed=1000 + i)
        x = draw(i)
        v, a, b = with_interval(x, ref, "energy_u", seed=i)
        eu.append(v)
        lo.append(v - a)
        hi.append(b - v)
        w2.append(w2_exact(x, ref))
    half = math.sqrt(statistics.mean(h * h for h in hi) / len(hi))
    return {"energy_u": statistics.mean(eu), "energy_u_half": half, "w2": statistics.mean(w2), "w2_pairs": w2}


def w2_interval(ours: dict, other: dict) -> tuple[float, float, float] | None:
    """W2 mean over mean with its 95 % interval, when both were scored on the same R >= 2 references
    (pair i of each used reference i); None otherwise."""
    a, b = ours.get("w2_pairs", []), other.get("w2_pairs", [])
    return ratio_interval(a, b) if len(a) == len(b) >= 2 else None


def w2_ratio(ours: dict, other: dict) -> str:
    """W2 mean over mean, with its 95 % interval where :func:`w2_interval` has one: a W2 on two moons
    moves by a third with the share of points each moon gets, so two pairs cannot tell 1.2x from 1.35x."""
    interval = w2_interval(ours, other)
    if interval is not None:
        r, lo, hi = interval
        return f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
    return f"{ours['w2'] / other['w2']:.2f}"


def floors(name: str, args: argparse.Namespace) -> dict:
    return score(name, lambda i: load_data(name, n=args.n, seed=2000 + i), args)


def sample_model(model, stats, dim, solver, grid, nfe, i, args, path):
    steps = solver_steps_for_nfe(solver, nfe)
    x0 = torch.randn(args.n, dim, generator=torch.Generator().manual_seed(4000 + i))
    field = CountingField(model_field(model, path, "velocity"))
    with torch.inference_mode():
        x = ODE_SOLVERS[solver](field, x0, make_grid(grid, path, steps), path=path).x
    assert field.nfe == nfe, (solver, nfe, field.nfe)
    return stats.inverse(x)


def run_eval(args: argparse.Namespace) -> dict:
    path = make_path("condot")
    out: dict = {}
    for name in args.sets.split(","):
        res: dict = {"floor": floors(name, args), "recipes": {}, "samplers": {}}
        fl = res["floor"]
        print(f"\n{name}: floor energy_u {fl['energy_u']:+.4f} (+-{fl['energy_u_half']:.4f}), W2 {fl['w2']:.4f}")
        for variant in VARIANTS if args.only != "samplers" else ():
            if not cell_path(args, name, variant).exists():
                continue
            cell = load_cell(name, variant, args)
            info = cell[3]
            s = score(name, lambda i, c=cell: sample_model(*c[:3], args.solver, args.grid, 8, i, args, path), args)
            res["recipes"][variant] = s | {"ms_per_step": info["ms_per_step"]}
            print(f"  recipe {variant:<16} energy_u {s['energy_u']:+.4f} +-{s['energy_u_half']:.4f}  "
                  f"W2 {s['w2']:.4f} ({w2_ratio(s, fl)}x)  {info['ms_per_step']:.1f} ms/step", flush=True)
        if args.only != "recipes":
            base = load_cell(name, args.sampler_variant, args)[:3]
            res["samplers"] = sweep_samplers(
                name, lambda solver, grid, nfe, i, b=base: sample_model(*b, solver, grid, nfe, i, args, path), fl, args)
        out[name] = res
    return out


def sweep_samplers(name: str, draw, floor: dict, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """Every sampler of ``SAMPLERS`` at every NFE of ``NFES`` it can spend; ``draw(solver, grid, nfe, i)``."""
    rows = {}
    for solver, grid in SAMPLERS:
        for nfe in NFES:
            if solver_steps_for_nfe(solver, nfe, strict=False) is None:
                continue
            s = score(name, lambda i, k=(solver, grid, nfe): draw(*k, i), args)
            rows[f"{solver}/{grid}/{nfe}"] = s
            print(f"  {solver:>9}/{grid:<8} NFE {nfe:>2}: energy_u {s['energy_u']:+.4f} +-{s['energy_u_half']:.4f}"
                  f"  W2 {s['w2']:.4f} ({w2_ratio(s, floor)}x)", flush=True)
    return rows


def run_oracle(args: argparse.Namespace) -> dict:
    from noise2data.data.suite import mixture_of
    from noise2data.paths.oracle import MixtureOracle

    path = make_path("condot")
    out: dict = {}
    for name in ("gmm6", "gmm10"):
        field = MixtureOracle.from_mixture(mixture_of(name), path)
        res = {"floor": floors(name, args), "samplers": {}}
        print(f"\n{name} (exact field): floor energy_u {res['floor']['energy_u']:+.4f}, W2 {res['floor']['w2']:.4f}")

        def draw(solver: str, grid: str, nfe: int, i: int, field=field) -> torch.Tensor:
            g = torch.Generator().manual_seed(4000 + i)
            x0 = torch.randn(args.n, field.d, generator=g, dtype=torch.float64)
            steps = solver_steps_for_nfe(solver, nfe)
            return ODE_SOLVERS[solver](field, x0, make_grid(grid, path, steps), path=path).x.float()

        res["samplers"] = sweep_samplers(name, draw, res["floor"], args)
        out[name] = res
    return out


def run_cost(args: argparse.Namespace) -> dict:
    """ms/step of 300 training steps per coupling (ot-blocks at each block size of ``--blocks``), and
    each blocked coupling's transport cost against exact OT."""
    blocks = [int(b) for b in args.blocks.split(",")]
    out: dict = {}
    for name in args.sets.split(","):
        data = load_data(name, n=100_000, seed=args.seed)
        z = Standardizer.fit(data).forward(data)
        row: dict = {}
        for coupling in ["independent", "ot"] + [f"ot-blocks:{b}" for b in blocks]:
            model = MLP(MLPConfig(data_shape=(z.shape[1],)))
            cfg = TrainConfig(steps=300, batch_size=512, coupling=coupling, device="cpu", log_every=300,
                              checkpoint_every=300, seed=args.seed)
            res = train(model, make_path("condot"), z, cfg, progress=False)
            row[coupling.replace(":", " ")] = {"ms_per_step": 1000 / res.steps_per_sec}
        g = torch.Generator().manual_seed(args.seed)
        gaps: dict[int, list[float]] = {b: [] for b in blocks}
        for _ in range(20):
            x1 = z[torch.randint(0, len(z), (512,), generator=g)]
            x0 = torch.randn(x1.shape, generator=g)
            exact = (x0[couplings.ot_assignment(x0, x1)] - x1).pow(2).sum()
            for b in blocks:
                gaps[b].append(float((x0[couplings.block_assignment(x0, x1, b)] - x1).pow(2).sum() / exact))
        base = row["independent"]["ms_per_step"]
        line = [f"{name:<12} ms/step: independent {base:.1f}, ot {row['ot']['ms_per_step']:.1f} "
                f"({row['ot']['ms_per_step'] / base:.2f}x)"]
        for b in blocks:
            cell = row[f"ot-blocks {b}"]
            cell["cost_over_exact"] = statistics.mean(gaps[b])
            line.append(f"ot-blocks {b} {cell['ms_per_step']:.1f} ({cell['ms_per_step'] / base:.2f}x, "
                        f"transport cost {cell['cost_over_exact']:.3f}x the optimum)")
        print("; ".join(line), flush=True)
        out[name] = row
    return out


SUITE_SETS = "rings,wave,holes,student,gmm6,gmm10,checkerboard,moons,circles,8gaussians,spirals"


def run_suite(args: argparse.Namespace, meta: dict) -> dict:
    """noise2data's defaults against the peers at equal wall clock, on every set; JSON after each set."""
    from noise2data.cli import main as cli
    from noise2data.run import load_run
    from recipe_peers import PEERS


    out_file = Path(args.dir) / "suite.json"
    done = json.loads(out_file.read_text())["sets"] if out_file.exists() and args.resume else {}
    for name in args.sets.split(","):
        if name in done:
            continue
        run_dir = Path(args.dir) / "suite_runs" / name
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        start = time.perf_counter()
        cli(["train", "--data", name, "--out", str(run_dir), "--steps", str(args.steps), "--no-progress",
             "--device", "cpu", "--seed", str(args.seed), *args.train_args.split()])
        seconds = time.perf_counter() - start
        run = load_run(run_dir, device="cpu")
        row = {"floor": floors(name, args), "seconds": seconds, "methods": {}}
        dim = run.data_shape[0]

        def ours(i: int, run=run) -> torch.Tensor:
            steps = solver_steps_for_nfe(args.solver, 8)
            out = run.sample(args.n, solver=args.solver, steps=steps, seed=4000 + i)
            assert out.nfe == 8
            return out.x

        row["methods"]["noise2data"] = score(name, ours, args) | {"steps": args.steps, "seconds": seconds}
        data = load_data(name, n=100_000, seed=args.seed)
        stats = Standardizer.fit(data)
        for peer, fit in PEERS.items() if not args.no_peers else ():
            sample, info = fit(stats.forward(data), seconds, args.seed)

            def theirs(i: int, sample=sample, dim=dim, stats=stats, peer=peer) -> torch.Tensor:
                x0 = torch.randn(args.n, dim, generator=torch.Generator().manual_seed(4000 + i))
                x, nfe = sample(x0)
                assert nfe == 8, (peer, nfe)
                return stats.inverse(x)

            row["methods"][peer] = score(name, theirs, args) | info
        done[name] = row
        print_suite_row(name, row)
        out_file.write_text(json.dumps({"meta": meta, "sets": done}, indent=2))
    return done


def print_suite_row(name: str, row: dict) -> None:
    fl = row["floor"]
    print(f"\n{name}: {row['seconds']:.0f} s each; floor energy_u {fl['energy_u']:+.4f} +-{fl['energy_u_half']:.4f}, "
          f"W2 {fl['w2']:.4f}")
    for method, r in row["methods"].items():
        print(f"  {method:<16} {r['steps']:>6} steps  energy_u {r['energy_u']:+.4f} +-{r['energy_u_half']:.4f}  "
              f"W2 {r['w2']:.4f} ({w2_ratio(r, fl)}x floor)", flush=True)


def summarise_suite(sets: dict) -> None:
    """The issue's targets per set, read on the means over the R pairs: W2 within 1.2x of its floor, and W2 at
    least 20% below the best peer's (with the excess over the floor beside it); each ratio with its 95 % interval
    over the pairs (the pairs share their references). energy_u says whether the samples can be told from data
    at all at this size (its 95% interval holds 0)."""
    print(f"\n{'set':<13}{'n2d W2/floor [95%]':>21}{'best peer (W2)':>17}{'peer W2/floor':>14}"
          f"{'W2 ours/peer [95%]':>21}{'excess ours/peer':>17}  {'n2d energy_u [95%]':<26}targets")
    for name, row in sets.items():
        fl = row["floor"]
        ours = row["methods"]["noise2data"]
        peers = {k: v for k, v in row["methods"].items() if k != "noise2data"}
        best = min(peers, key=lambda k: peers[k]["w2"])
        r_ours, r_peer = ours["w2"] / fl["w2"], peers[best]["w2"] / fl["w2"]
        vs = ours["w2"] / peers[best]["w2"]
        peer_excess = peers[best]["w2"] - fl["w2"]  # at or below its floor, the peer leaves no excess to compare
        excess = f"{(ours['w2'] - fl['w2']) / peer_excess:.2f}" if peer_excess > 0 else "peer <= floor"
        lo, hi = ours["energy_u"] - ours["energy_u_half"], ours["energy_u"] + ours["energy_u_half"]
        peer_interval = w2_interval(peers[best], fl)
        peer_at_floor = peer_interval is not None and peer_interval[1] <= 1.0
        verdict = ("floor met" if r_ours <= 1.2 else "floor MISSED") + ", " + (
            "20% better met" if vs <= 0.8 else "20% better MISSED") + (
            " (best peer within the floor's noise: no margin to win)" if peer_at_floor else "")
        print(f"{name:<13}{w2_ratio(ours, fl) + 'x':>21}{best:>17}{r_peer:>13.2f}x{w2_ratio(ours, peers[best]):>21}"
              f"{excess:>17}  {ours['energy_u']:+.4f} [{lo:+.4f}, {hi:+.4f}]  {verdict}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=["train", "eval", "oracle", "cost", "suite"])
    p.add_argument("--sets", help="comma-separated sets (default: rings,gmm6,checkerboard; suite: all of the suite)")
    p.add_argument("--only", choices=["recipes", "samplers"], help="eval: score only the recipes or only the samplers")
    p.add_argument("--train-args", default="", help="suite: extra flags for noise2data's train, e.g. '--coupling ot'")
    p.add_argument("--no-peers", action="store_true", help="suite: noise2data only")
    p.add_argument("--show", nargs="+", help="print the tables of suite.json files written earlier, and stop")
    p.add_argument("--resume", action="store_true", help="suite: keep the sets already in suite.json")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--blocks", default="32,64,128", help="cost: the ot-blocks block sizes to time")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--refs", type=int, default=10,
                   help="independent (samples, reference, floor sample) triples per score; W2 on sets of a few large "
                        "parts (moons, wave) moves by 35-55%% between pairs, so ratios from 2 pairs mislead")
    p.add_argument("--sampler-variant", default="base", help="eval: the recipe whose models the samplers are scored on")
    p.add_argument("--solver", default="midpoint", help="the sampler every recipe is scored with (8 NFE)")
    p.add_argument("--grid", default="uniform")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dir", default="benchmarks/results/recipe")
    args = p.parse_args()
    if args.show:
        sets = {k: v for f in args.show for k, v in json.loads(Path(f).read_text())["sets"].items()}
        for name, row in sets.items():
            print_suite_row(name, row)
        summarise_suite(sets)
        return
    args.sets = args.sets or (SUITE_SETS if args.phase == "suite" else "rings,gmm6,checkerboard")
    torch.set_num_threads(args.threads)
    meta = {"noise2data": __version__, "torch": torch.__version__, "machine": platform.machine(), "args": vars(args)}
    if args.phase == "train":
        infos = [train_cell(name, v, args) for v in args.variants.split(",") for name in args.sets.split(",")]
        result = {"meta": meta, "cells": infos}
    elif args.phase == "eval":
        result = {"meta": meta, "sets": run_eval(args)}
    elif args.phase == "oracle":
        result = {"meta": meta, "sets": run_oracle(args)}
    elif args.phase == "cost":
        result = {"meta": meta, "sets": run_cost(args)}
    else:
        result = {"meta": meta, "sets": run_suite(args, meta)}
    out = Path(args.dir) / f"{args.phase}{'_' + args.only if args.only else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
