"""Few-step sampling on 2-D sets: what each method buys at 1, 2, 4 and 8 evaluations, and what it costs.

For each set (default checkerboard and moons) the benchmark trains, through the CLI as a user would:

- ``base``: flow matching, independent coupling (``--time-embedding smooth``, so it can be distilled);
- ``ot-blocks``: the same with minibatch OT in blocks (the default coupling for 2-D data);
- ``reflow``: ``noise2data reflow base`` (pairs from base with rk4 x 16, 2-rectified flow, initialised from base);
- ``meanflow``: ``--objective meanflow`` from scratch, as a user gets it (the default coupling: OT in blocks on 2-D);
- ``mf-indep``: the same with ``--coupling independent`` (MeanFlow as published);
- ``distilled``: ``noise2data distill base`` (MeanFlow, base as teacher and initialisation);
- ``dist-ot``: ``noise2data distill ot-blocks`` (the straighter teacher, half the steps);

then samples each at every budget its samplers can meet (base: euler, midpoint, dpm++2m, unipc2 and a
64-evaluation reference; OT-coupled and reflowed models: euler and midpoint; jump models: their jumps) and
prints W2 / floor over ``--repeats`` paired repeats (sample k and a real floor sample k, both against
reference k) with its 95 % interval, with the training seconds of each method
(a derived run's cost includes its source's). Results go to ``--dir`` (runs) and
``benchmarks/results/few_step.json``. Run it alone on the machine: timings are wall clock.

With ``--mnist DIR`` (MNIST IDX files) it also trains a class-conditional tiny U-Net (``base``, smooth time
embedding) and distils it (``distilled``, MeanFlow with the base as teacher), trains the in-domain FID
extractor, and reports FID beside its floor and class accuracy (guidance 1) at each budget through
``noise2data eval --sweep``: the base with euler, midpoint, heun, dpm++2m and unipc2, and 64 midpoint evaluations as
its reference; the distilled model in 1, 2 and 4 jumps. ``--mnist-methods base-ot,dist-ot`` adds the base
trained with minibatch OT within each class and its jump model (the toys' best few-step recipe);
``reflow`` (20000 pairs drawn with rk4 x 8, half the base's steps) and ``meanflow`` (a jump model from
scratch, 1.5x the base's steps, with the default coupling for image jump models: OT within each class) complete the
toys' list; ``mf-indep`` is that jump model with independent pairs. ``--mnist-distill-steps`` and
``--mnist-meanflow-steps`` set the jump models' lengths (default half and 1.5x the base's steps).
``--mnist-seeds K`` scores every one-step model against the base's 64 evaluations on K evaluation seeds,
paired per seed (a 1000-sample FID moves by 2x between draws).

    python benchmarks/few_step.py                       # checkerboard, moons; ~40 min on 2 cores
    python benchmarks/few_step.py --sets moons --steps 2000 --dir /tmp/fs   # a smoke run
    python benchmarks/few_step.py --sets "" --mnist ../shared/data/mnist --mnist-steps 3000

``--meanflow-variants "NAME=FLAGS;..."`` adds MeanFlow-from-scratch rows with other training flags, and
``--methods`` limits what is trained and scored (the base is always trained: it is the time reference):

    python benchmarks/few_step.py --sets moons --methods meanflow,mf-r0.5 --meanflow-variants "mf-r0.5=--mf-ratio 0.5"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import time
from pathlib import Path

import torch

from noise2data import __version__
from noise2data.cli import main as cli
from noise2data.data import load_data
from noise2data.metrics import w2_exact
from noise2data.metrics.compare import ratio_interval
from noise2data.run import load_run
from noise2data.samplers import solver_steps_for_nfe

NFES = (1, 2, 4, 8)
BASE_SOLVERS = ("euler", "midpoint", "dpm++2m", "unipc2")


def methods(steps: int, variants: str = "") -> dict[str, tuple[str, list[str], str | None]]:
    """name -> (command, arguments, source method whose time counts too); ``variants`` ("NAME=FLAGS;...") adds
    MeanFlow-from-scratch runs with those training flags."""
    common = ["--time-embedding", "smooth", "--coupling"]
    mf = ["--steps", str(steps * 3 // 2), "--objective", "meanflow"]  # the default coupling (auto)
    extra = {}
    for item in filter(None, (v.strip() for v in variants.split(";"))):
        name, sep, flags = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"bad --meanflow-variants item {item!r}: write NAME=FLAGS, e.g. mf-r0.5=--mf-ratio 0.5")
        extra[name.strip()] = ("train", [*mf, *flags.split()], None)
    return {
        "base": ("train", ["--steps", str(steps), *common, "independent"], None),
        "ot-blocks": ("train", ["--steps", str(steps), *common, "ot-blocks"], None),  # the 2-D default coupling
        "reflow": ("reflow", ["--steps", str(steps // 2), "--pairs", "50000"], "base"),
        "meanflow": ("train", mf, None),
        "mf-indep": ("train", [*mf, "--coupling", "independent"], None),
        "distilled": ("distill", ["--steps", str(steps * 3 // 4)], "base"),
        "dist-ot": ("distill", ["--steps", str(steps // 2)], "ot-blocks"),
        **extra,
    }


def train_all(data: str, root: Path, todo: dict[str, tuple[str, list[str], str | None]]) -> dict[str, float]:
    """Train the methods ``todo`` on ``data`` under ``root`` (a finished run is reused); seconds of each."""
    seconds: dict[str, float] = {}
    timing = root / "seconds.json"
    if timing.is_file():
        seconds = json.loads(timing.read_text())
    for name, (command, args, source) in todo.items():
        out = root / name
        if name in seconds and (out / "config.json").is_file():
            continue
        head = ["train", "--data", data] if command == "train" else [command, str(root / source)]
        t0 = time.perf_counter()
        code = cli([*head, *args, "--out", str(out), "--no-progress", "--device", "cpu"])
        if code:
            raise SystemExit(f"{name} on {data} failed with exit status {code}")
        seconds[name] = time.perf_counter() - t0
        timing.write_text(json.dumps(seconds))
    return seconds


DERIVED_SOLVERS = ("euler", "midpoint")  # OT-coupled and reflowed models: straight paths, one-stage solvers suffice


def floors_of(data: str, n: int, repeats: int) -> list[float]:
    """The real-vs-real W2 floor of each repeat: reference k against an independent real sample k."""
    return [w2_exact(load_data(data, n=n, seed=30_000 + k), load_data(data, n=n, seed=10_000 + k))
            for k in range(repeats)]


def score(run_dir: Path, data: str, n: int, floors: list[float], base_family: bool = True) -> dict:
    """W2 / floor of the run at every budget its samplers meet: sample k against reference k (the one
    floor k used), so each ratio carries its 95 % interval from the paired repeats (a single W2 at 4000
    points moves by a third from draw to draw on moons): ``{solver: {nfe: {ratio, low, high, w2}}}``."""
    run = load_run(run_dir)
    refs = [load_data(data, n=n, seed=10_000 + k) for k in range(len(floors))]
    solvers = ("meanflow",) if run.jumps else BASE_SOLVERS if base_family else DERIVED_SOLVERS
    out: dict[str, dict[int, dict]] = {}
    for solver in solvers:
        for nfe in (*NFES, 64):
            if nfe == 64 and (run.jumps or solver != "midpoint" or not base_family):
                continue
            steps = solver_steps_for_nfe(solver, nfe, strict=False)
            if steps is None:
                continue
            w2 = [w2_exact(run.sample(n, solver=solver, steps=steps, seed=k).x, ref) for k, ref in enumerate(refs)]
            ratio, low, high = ratio_interval(w2, floors)
            out.setdefault(solver, {})[nfe] = {"ratio": ratio, "low": low, "high": high, "w2": w2}
    return out


# a derived run's cost includes its source's
MNIST_SOURCE = {"distilled": "base", "dist-ot": "base-ot", "reflow": "base"}


def mnist(folder: str, root: Path, steps: int, n: int, methods: tuple[str, ...] = ("base", "distilled"),
          distill_steps: int | None = None, meanflow_steps: int | None = None, seeds: int = 1) -> dict:
    """Class-conditional U-Nets on MNIST: the base, its jump model (``distilled``), and optionally the base
    trained with OT within each class (``base-ot``) and its jump model (``dist-ot``), ``reflow`` and
    ``meanflow`` from scratch; FID, its floor and class accuracy per budget. ``distill_steps`` defaults to
    half the base's steps, ``meanflow_steps`` to 1.5x. ``seeds`` > 1 adds the one-step FID of every method
    against the base's 64-step FID, paired over that many evaluation seeds (:func:`paired_one_step`)."""
    distill_steps = distill_steps or steps // 2
    meanflow_steps = meanflow_steps or steps * 3 // 2
    methods = tuple(dict.fromkeys([*(MNIST_SOURCE[m] for m in methods if m in MNIST_SOURCE), *methods]))
    root.mkdir(parents=True, exist_ok=True)
    timing = root / "seconds.json"
    seconds = json.loads(timing.read_text()) if timing.is_file() else {}
    fx = root / "fx.safetensors"
    if not fx.is_file():
        assert cli(["features", "--data", f"mnist:{folder}", "--out", str(fx)]) == 0
    base = ["train", "--data", f"mnist:{folder}", "--model", "unet", "--cond", "label", "--time-embedding",
            "smooth", "--steps", str(steps)]
    # from scratch, as a user gets it (the image default for jump models: OT within each class)
    meanflow = [*base[:-2], "--steps", str(meanflow_steps), "--objective", "meanflow"]
    jobs = {
        "base": base,
        "base-ot": [*base, "--coupling", "ot"],  # exact minibatch OT, pairs only within a class
        "distilled": ["distill", str(root / "base"), "--steps", str(distill_steps)],
        "dist-ot": ["distill", str(root / "base-ot"), "--steps", str(distill_steps)],
        # 20000 pairs with rk4 x 8 (32 evaluations each; the toys' 50000 x 64 would cost 8x the base here)
        "reflow": ["reflow", str(root / "base"), "--steps", str(steps // 2), "--pairs", "20000", "--sample-steps", "8"],
        "meanflow": meanflow,
        "mf-indep": [*meanflow, "--coupling", "independent"],
    }
    unknown = [m for m in methods if m not in jobs]
    if unknown:
        raise SystemExit(f"unknown MNIST method(s) {', '.join(unknown)}: choose among {', '.join(jobs)}")
    for name, argv in jobs.items():
        if name in seconds or name not in methods:
            continue
        t0 = time.perf_counter()
        if cli([*argv, "--out", str(root / name), "--no-progress", "--device", "cpu"]):
            raise SystemExit(f"MNIST {name} failed")
        seconds[name] = time.perf_counter() - t0
        timing.write_text(json.dumps(seconds))
    table = {}
    for name, sweeps in {"base": [("euler,midpoint,dpm++2m,unipc2", "1,2,4,8"), ("heun", "2,4,8"), ("midpoint", "64")],
                         "base-ot": [("euler,midpoint", "1,2,4,8")], "reflow": [("euler,midpoint", "1,2,4,8")],
                         "distilled": [("meanflow", "1,2,4")], "dist-ot": [("meanflow", "1,2,4")],
                         "meanflow": [("meanflow", "1,2,4")], "mf-indep": [("meanflow", "1,2,4")]}.items():
        if name not in methods:
            continue
        rows = []
        for solvers, nfes in sweeps:
            rows += eval_sweep(root, name, solvers, nfes, fx, n)
        cost = seconds[name] + (seconds[MNIST_SOURCE[name]] if name in MNIST_SOURCE else 0.0)
        table[name] = {"seconds": cost, "cost_vs_base": cost / seconds["base"] if "base" in seconds else math.nan,
                       "scores": {f"{r['solver']}@{r['nfe']}": {k: r["result"]["image"].get(k) for k in
                                  ("fid", "fid_floor", "class_accuracy")} for r in rows}}
    print(f"\nMNIST (class-conditional, guidance 1, {n} samples): FID (floor), class accuracy; training seconds")
    for name, row in table.items():
        for key, sc in row["scores"].items():
            print(f"{name:<10} {key:<14} FID {sc['fid']:8.3f} (floor {sc['fid_floor']:.3f})  "
                  f"accuracy {sc['class_accuracy']:.4f}   {row['seconds']:7.0f} s ({row['cost_vs_base']:.2f}x base)")
    if seeds > 1 and "base" in methods:
        table["paired_one_step"] = paired_one_step(root, fx, [m for m in methods if m != "base"], n, seeds)
    return table


def eval_sweep(root: Path, name: str, solvers: str, nfes: str, fx: Path, n: int, seed: int | None = None) -> list:
    """``noise2data eval --sweep`` of run ``root/name`` (rows cached in a JSON file beside it)."""
    tag = f"{name}_{solvers.replace(',', '_')}_{nfes.replace(',', '_')}" + ("" if seed is None else f"_seed{seed}")
    out = root / f"{tag}.json"
    if not out.is_file():
        with contextlib.redirect_stdout(io.StringIO()):  # the rows are read back from --out, not echoed into the log
            code = cli(["eval", str(root / name), "--sweep", nfes, "--solvers", solvers, "--n", str(n),
                        "--features", str(fx), "--out", str(out), "--device", "cpu", "--json",
                        *([] if seed is None else ["--seed", str(seed)])])
        assert code == 0, f"eval of {name} failed with exit status {code}"
    return json.loads(out.read_text())["sweep"]


ONE_STEP = {"base-ot": "euler", "reflow": "euler"}  # the sampler of a one-evaluation draw; jump models: meanflow


def paired_one_step(root: Path, fx: Path, names: list[str], n: int, seeds: int) -> dict:
    """One-step FID of each run in ``names`` over the base's 64-step FID, per evaluation seed (a seed draws
    both the noise and the real reference, so the runs are compared on the same draw; a 1000-sample FID
    moves by 2x between draws): ``{name: {ratios, fid, accuracy, base_accuracy, floors}}``."""

    def fid(name: str, solver: str, nfe: int, seed: int) -> dict:
        return eval_sweep(root, name, solver, str(nfe), fx, n, seed)[0]["result"]["image"]

    base = [fid("base", "midpoint", 64, s) for s in range(seeds)]
    base_acc = sum(b["class_accuracy"] for b in base) / seeds
    result = {}
    print(f"\nMNIST one-step FID / the base's 64-step FID, paired over eval seeds 0..{seeds - 1}; class accuracy")
    print("base@64 FID  " + " ".join(f"{b['fid']:.3f}" for b in base)
          + "   floors " + " ".join(f"{b['fid_floor']:.3f}" for b in base))
    for name in names:
        solver = ONE_STEP.get(name, "meanflow")
        one = [fid(name, solver, 1, s) for s in range(seeds)]
        ratios = [o["fid"] / b["fid"] for o, b in zip(one, base, strict=True)]
        acc = sum(o["class_accuracy"] for o in one) / seeds
        result[name] = {"ratios": ratios, "fid": [o["fid"] for o in one], "accuracy": acc,
                        "base_accuracy": base_acc, "floors": [b["fid_floor"] for b in base]}
        print(f"{name:<12} {solver}@1: ratio {sum(ratios) / seeds:.2f}x (per seed {min(ratios):.2f}-{max(ratios):.2f})"
              f"  accuracy {acc:.2%} (base@64 {base_acc:.2%}, {100 * (acc - base_acc):+.1f} points)")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="checkerboard,moons")
    p.add_argument("--steps", type=int, default=4000, help="steps of the base model (the others scale from it)")
    p.add_argument("--n", type=int, default=4000, help="samples per score")
    p.add_argument("--repeats", type=int, default=10, help="paired (sample, reference, floor sample) repeats")
    p.add_argument("--dir", default="benchmarks/results/few_step_runs")
    p.add_argument("--json", default="benchmarks/results/few_step.json")
    p.add_argument("--mnist", help="folder of MNIST IDX files: also the class-conditional MNIST part")
    p.add_argument("--mnist-steps", type=int, default=3000, help="steps of the MNIST base model (default 3000)")
    p.add_argument("--mnist-n", type=int, default=1000, help="samples per MNIST FID (default 1000)")
    p.add_argument("--mnist-methods", default="base,distilled",
                   help="MNIST: any of base, distilled, base-ot (OT within each class), dist-ot, reflow, meanflow, "
                   "mf-indep (default base,distilled)")
    p.add_argument("--mnist-distill-steps", type=int,
                   help="MNIST: steps of each distillation (default half the base's)")
    p.add_argument("--mnist-meanflow-steps", type=int,
                   help="MNIST: steps of MeanFlow from scratch (default 1.5x the base's)")
    p.add_argument("--mnist-seeds", type=int, default=1,
                   help="MNIST: also every one-step FID over the base's 64-step FID, paired over this many "
                   "evaluation seeds (default 1: off)")
    p.add_argument("--methods", help="comma-separated methods to train and score (default all)")
    p.add_argument("--meanflow-variants", default="", help='extra MeanFlow-from-scratch rows, "NAME=FLAGS;..." '
                   '(e.g. "mf-r0.5=--mf-ratio 0.5")')
    args = p.parse_args()
    every = methods(args.steps, args.meanflow_variants)
    chosen = args.methods.split(",") if args.methods else list(every)
    unknown = [m for m in chosen if m not in every]
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}: choose among {', '.join(every)}")
    # what is scored, plus what it needs: the base (the time reference) and each derived run's source
    needed = {"base", *chosen, *(every[m][2] for m in chosen if every[m][2])}
    todo = {name: spec for name, spec in every.items() if name in needed}
    results = {"version": __version__, "machine": platform.platform(), "threads": torch.get_num_threads(),
               "steps": args.steps, "n": args.n, "repeats": args.repeats, "sets": {}}
    for data in filter(None, args.sets.split(",")):
        root = Path(args.dir) / data
        root.mkdir(parents=True, exist_ok=True)
        seconds = train_all(data, root, todo)
        floors = floors_of(data, args.n, args.repeats)
        table = {}
        for name, (_, _, source) in todo.items():
            if name not in chosen:
                continue
            cost = seconds[name] + (seconds[source] if source else 0.0)
            table[name] = {"seconds": cost, "cost_vs_base": cost / seconds["base"],
                           "scores": score(root / name, data, args.n, floors, name == "base")}
        results["sets"][data] = {"floors": floors, "methods": table}
        print_table(data, table, floors)
    if args.mnist:
        results["mnist"] = mnist(args.mnist, Path(args.dir) / "mnist", args.mnist_steps, args.mnist_n,
                                 tuple(args.mnist_methods.split(",")), args.mnist_distill_steps,
                                 args.mnist_meanflow_steps, args.mnist_seeds)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


def print_table(data: str, table: dict, floors: list[float]) -> None:
    """One row per (method, solver): W2 / floor [95 %] at each NFE, the training seconds and their ratio to base."""
    print(f"\n{data}: W2 / floor, mean of {len(floors)} paired repeats [95 %] (floor {sum(floors) / len(floors):.4f}, "
          f"{min(floors):.4f}-{max(floors):.4f}); training seconds (x base)")
    print(f"{'method':<10} {'solver':<9}" + "".join(f"{'NFE ' + str(k):>19}" for k in (*NFES, 64))
          + f"{'seconds':>9}{'x base':>8}")
    for name, row in table.items():
        for solver, by_nfe in row["scores"].items():
            cells = "".join(f"{c['ratio']:>6.2f} [{c['low']:.2f}, {c['high']:.2f}]" if (c := by_nfe.get(k))
                            else f"{'-':>19}" for k in (*NFES, 64))
            print(f"{name:<10} {solver:<9}{cells}{row['seconds']:>9.0f}{row['cost_vs_base']:>8.2f}")


if __name__ == "__main__":
    main()
