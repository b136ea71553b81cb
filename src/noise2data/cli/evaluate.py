"""The evaluation commands of the CLI: ``eval``, ``nll``, ``report`` and ``features``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError
from ..samplers.budget import solver_steps_for_nfe
from .common import (
    DEFAULT_SOLVER,
    add_guidance,
    add_guidance_interval,
    add_output_format,
    add_run_options,
    add_seed,
    add_solver_options,
    guidance_given,
    guidance_interval,
    non_negative_int,
    positive_int,
    sampler_given,
    solver_steps,
)
from .extra import add_modality_options, modality_extra


def add_evaluation_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``eval``, ``nll``, ``report`` and ``features``."""
    from ..modalities import all_modalities

    e = sub.add_parser("eval", help="sample a run and compare with real data, each metric beside its floor")
    add_run_options(e)
    e.add_argument("--n", type=positive_int, help="samples and real points (default: the kind of data's, "
                   + ", ".join(f"{m.name} {m.eval_n}" for m in all_modalities()) + ")")
    defaults = "; ".join(f"{m.name}: {','.join(m.default_metrics)}" for m in all_modalities())
    e.add_argument("--metrics", help="comma-separated: w2, sw2, mmd, energy, energy_u, mmd2_u (debiased, with a 95%% "
                   "interval), precision, recall, nll, fid, kid "
                   f"(default: the kind of data's own; {defaults})")
    add_solver_options(e)
    e.add_argument("--sweep", help="quality against the budget instead: evaluate at each of these NFE (e.g. 1,2,4,8) "
                   "with each solver of --solvers; writes RUN/eval_sweep.json")
    e.add_argument("--solvers", help="solvers of --sweep (default: meanflow,midpoint for a jump model, "
                   "euler,midpoint,dpm++2m otherwise)")
    e.add_argument("--data", help="real data to compare with (default: the run's own; name a held-out file)")
    e.add_argument("--nll-n", type=positive_int, default=1000, help="held-out points for nll (default 1000)")
    e.add_argument("--repeats", type=positive_int, default=3,
                   help="data generated in code (toy and suite sets): independent (samples, reference, floor "
                        "sample) triples, reported as means with each ratio's 95%% interval (default 3; one W2 pair "
                        "on two moons moves by a third, so use 10 to tell 1.2x from 1.35x)")
    add_seed(e)
    e.add_argument("--features", help="feature extractor for fid/kid (from 'noise2data features')")
    add_guidance(e, what="; class-conditional image runs: fid/kid from n/classes samples per class at this scale, "
                 "with class accuracy")
    add_guidance_interval(e)
    add_output_format(e, "where to write the JSON (default RUN/eval.json)")
    add_modality_options(e, "eval")
    nl = sub.add_parser("nll", help="exact log-likelihood of held-out points (probability-flow ODE)")
    add_run_options(nl, step=False)
    nl.add_argument("--data", help="points to score: a toy name, gmm:FILE.json or an array file "
                    "(default: fresh draws of the run's data)")
    nl.add_argument("--n", type=positive_int, default=2000, help="points (default 2000)")
    nl.add_argument("--solver", default="rk4", help="ODE solver (default rk4)")
    nl.add_argument("--steps", type=positive_int, default=64, help="solver steps (default 64)")
    nl.add_argument("--divergence", default="auto", choices=["auto", "exact", "hutchinson"],
                    help="exact trace (auto for <= 16 dims) or Hutchinson's estimate")
    nl.add_argument("--dequantize", type=float,
                    help="grid spacing of discrete data in data units (e.g. 1 for integer pixels): adds "
                         "uniform noise and reports dequantised bits/dim (default: as the run was trained)")
    add_seed(nl)
    nl.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    rp = sub.add_parser("report", help="write RUN/report.html: what to look at for the run's kind of data")
    add_run_options(rp, step=False)
    rp.add_argument("--n", type=positive_int, default=2000, help="samples per measurement (default 2000; vectors: "
                    "the size of RUN/eval.json when it is current)")
    rp.add_argument("--metric", default="w2", help="vectors: metric of the quality-vs-NFE plot (default w2)")
    rp.add_argument("--solvers", default="euler,midpoint,heun,dpm++2m", help="vectors: solvers of the quality-vs-NFE "
                    "plot (default euler,midpoint,heun,dpm++2m)")
    rp.add_argument("--solver", help="vectors: the sampler of the metrics table when RUN/eval.json is not of the "
                    f"current step (default {DEFAULT_SOLVER}; meanflow for a jump model)")
    rp.add_argument("--nfe", type=positive_int, default=16, help="vectors: that sampler's budget of network "
                    "evaluations (default 16)")
    rp.add_argument("--features", help="images: feature extractor for the FID/KID/class-accuracy table")
    add_guidance(rp, default=2.0, what="; images: the guided row of the class grids and the FID table; runs "
                 "conditioned on properties: the guided row of the property table; video: over the known frames, "
                 "by default video's own 1.25")
    add_guidance_interval(rp)
    add_seed(rp)
    rp.add_argument("--out", help="output HTML file (default RUN/report.html)")
    ft = sub.add_parser("features", help="train the in-domain feature extractor that FID/KID use")
    ft.add_argument("--data", required=True, help="digits, mnist:FOLDER (IDX files; trains on train, "
                    "validates on test), images:FOLDER (subfolders as classes) or images:FILE.npz (with labels) "
                    "(every fifth image validates), or clips video:FILE with labels and centres (the identity "
                    "judge: their digits cut out at the clips' scale; with --video a 3-D CNN on whole clips; every "
                    "fifth clip validates)")
    ft.add_argument("--resize", type=positive_int, help="images resized to N x N, as 'train --resize N' saw them")
    ft.add_argument("--pad", type=non_negative_int, default=0, help="pixels of padding, as 'train --pad P' (default 0)")
    ft.add_argument("--video", action="store_true", help="a 3-D CNN on clips (for the video Frechet distance)")
    ft.add_argument("--epochs", type=positive_int, help="passes over the training images (default 3 above "
                    "20,000 images, as for mnist; else 30, as for the 1,437 digits)")
    add_seed(ft)
    ft.add_argument("--out", required=True, help="output .safetensors (its metadata goes beside it as .json)")


def _eval(args: argparse.Namespace) -> int:
    from ..evaluation import write_eval
    from ..run import load_run

    run = load_run(args.run, device=args.device, step=args.step)
    metrics = tuple(m.strip() for m in args.metrics.split(",")) if args.metrics else None
    if args.sweep:
        return _sweep(args, run, metrics)
    given = sampler_given(args)
    steps = solver_steps(args, run.config)
    res = run.modality.evaluate(run, _eval_request(args, run, metrics, args.solver, steps, given))
    out = write_eval(Path(args.out).parent, res, Path(args.out).name) if args.out else write_eval(args.run, res)
    print(json.dumps(res) if args.json else run.modality.format_eval(res))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _eval_request(args: argparse.Namespace, run, metrics: tuple[str, ...] | None, solver: str,  # noqa: ANN001
                  steps: int, given: bool = True):  # noqa: ANN202
    """What ``eval`` asks of the run's modality, for one sampler (``given``: the user chose it)."""
    from ..modalities import EvalRequest

    guided = guidance_given(args)
    return EvalRequest(n=args.n or run.modality.eval_n, metrics=metrics, solver=solver, steps=steps, grid=args.grid,
                       data=args.data, seed=args.seed, nll_n=args.nll_n, repeats=args.repeats, features=args.features,
                       guidance=args.guidance, guidance_interval=guidance_interval(args, run.modality),
                       sampler_given=given, guidance_given=guided, extra=modality_extra(args, run.modality, "eval"))


def _sweep(args: argparse.Namespace, run, metrics: tuple[str, ...] | None) -> int:  # noqa: ANN001
    """``eval --sweep 1,2,4``: the run's metrics at each budget its samplers can meet, one row each."""
    from ..evaluation import write_eval

    if args.steps is not None or args.nfe is not None or args.solver is not None:
        raise UserError("--sweep sets the budgets itself: drop --steps, --nfe and --solver (use --solvers)")
    try:
        nfes = [int(v) for v in args.sweep.split(",")]
    except ValueError:
        raise UserError(f"--sweep takes budgets like 1,2,4,8; got {args.sweep!r}") from None
    if any(k < 1 for k in nfes):
        raise UserError(f"--sweep budgets must be positive, got {args.sweep}")
    solvers = (args.solvers.split(",") if args.solvers
               else ["meanflow", "midpoint"] if run.jumps else ["euler", "midpoint", "dpm++2m"])
    rows = []
    for solver in solvers:
        for nfe in nfes:
            steps = solver_steps_for_nfe(solver, nfe, strict=False)
            if steps is None:  # e.g. midpoint at 1 evaluation: that budget is not one this solver can meet
                continue
            res = run.modality.evaluate(run, _eval_request(args, run, metrics, solver, steps))
            rows.append({"solver": solver, "nfe": nfe, "steps": steps, "result": res})
            if not args.json:
                print(f"--- {solver}, {nfe} NFE ---\n{run.modality.format_eval(res)}", flush=True)
    if not rows:
        raise UserError(f"none of {', '.join(solvers)} can spend exactly {args.sweep} evaluations")
    out = write_eval(Path(args.out).parent, {"sweep": rows}, Path(args.out).name) if args.out else write_eval(
        args.run, {"run": str(run.run_dir), "step": run.step, "sweep": rows}, "eval_sweep.json")
    if args.json:
        print(json.dumps(rows))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _nll(args: argparse.Namespace) -> int:
    from ..data import load_data
    from ..evaluation import HELD_OUT_SEED, format_nll, nll_summary, real_samples
    from ..run import load_run

    run = load_run(args.run, device=args.device)
    run.modality.check_likelihood(run)
    dequantize = args.dequantize if args.dequantize is not None else float(run.config["train"].get("dequantize", 0))
    if dequantize < 0:
        raise UserError(f"--dequantize must be >= 0, got {dequantize}")
    if args.data and not Path(args.data).exists():
        x = load_data(args.data, n=args.n, seed=HELD_OUT_SEED + args.seed)[: args.n]  # a name: fresh draws (an
        # image dataset's name gives all its images)
    elif args.data:
        x = load_data(args.data)[: args.n]
    else:
        x = real_samples(run, args.n, seed=args.seed)[0]
    if tuple(x.shape[1:]) != run.data_shape:
        raise UserError(f"the points have shape {tuple(x.shape[1:])}, the run models {run.data_shape}")
    spec = args.data or run.config.get("cli", {}).get("data")
    res = nll_summary(run, x, spec, solver=args.solver, steps=args.steps, divergence=args.divergence,
                      seed=args.seed, dequantize=dequantize)
    print(json.dumps(res) if args.json else format_nll(res))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..modalities import ReportRequest, modality_of
    from ..report import build_report
    from ..run import default_solver, read_run_config

    config = read_run_config(args.run)
    args.solver = args.solver or default_solver(config)
    guided = guidance_given(args)
    solver_steps_for_nfe(args.solver, args.nfe)  # refuse an impossible budget before any work
    request = ReportRequest(n=args.n, metric=args.metric, solvers=tuple(args.solvers.split(",")), seed=args.seed,
                            solver=args.solver, nfe=args.nfe,
                            features=args.features, guidance=args.guidance, guidance_given=guided,
                            guidance_interval=guidance_interval(args, modality_of(config)))
    out = build_report(args.run, request, out=args.out, device=args.device)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _features(args: argparse.Namespace) -> int:
    from ..modalities import modality_for_spec

    if not args.out.endswith(".safetensors"):
        raise UserError(f"--out must name a .safetensors file, got {args.out}")
    line = modality_for_spec(args.data).train_features(args.data, out=args.out, epochs=args.epochs, seed=args.seed,
                                                        clips=args.video, resize=args.resize, pad=args.pad)
    print(line, file=sys.stderr)
    return 0


EVALUATION_COMMANDS = {"eval": _eval, "nll": _nll, "report": _report, "features": _features}
