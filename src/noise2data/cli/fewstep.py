"""``distill`` and ``reflow``: new runs made from a trained flow model, for sampling in few steps.

Each starts from the source run's training options (data, model, path, coupling, ...), changes what
the method changes, and trains like ``train`` (progress, checkpoints, ``--resume``, torchrun). The
result is an ordinary run: ``sample``, ``eval`` and ``report`` take it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import positive_int
from .train import check_new_run, resumed_options, start_training
from .train_options import TRAIN_DEFAULTS

METHODS = ("meanflow",)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="the source run (a trained flow model)")
    p.add_argument("--out", required=True, help="folder of the new run")
    p.add_argument("--steps", type=positive_int, required=True, help="optimiser steps of the new run")
    p.add_argument("--batch-size", type=positive_int, help="default: the source's")
    p.add_argument("--lr", type=float, help="default: the source's")
    p.add_argument("--seed", type=int, help="default: the source's")
    p.add_argument("--checkpoint-every", type=positive_int, help="default 1000")
    p.add_argument("--source-step", type=int, help="the source's checkpoint of this step (default: the newest)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: the source's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_fewstep_commands(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("distill", help="distil a flow model into a jump model (1-4 step sampling)",
                       description="A MeanFlow model initialised from the source's weights, trained with the "
                       "source's velocity in its target; sample it with --steps 1 (or 2, 4, ...).")
    _common(d)
    d.add_argument("--method", choices=METHODS, default="meanflow", help="default meanflow")
    d.add_argument("--no-teacher", action="store_true", help="the conditional velocity in the target instead of "
                   "the source's (initialisation only)")
    d.add_argument("--mf-ratio", type=float, help="share of samples with r != t (default 0.75 when distilling)")
    d.add_argument("--mf-power", type=float, help="adaptive loss weight exponent (default 0 when distilling: the "
                   "teacher's target has no outliers to damp)")
    d.add_argument("--mf-jvp", choices=["forward", "backward", "fd"], help="default forward")
    d.add_argument("--mf-guidance", type=float, help="guidance scale baked in (labelled runs; default 1: none)")

    r = sub.add_parser("reflow", help="rectified flow: retrain on (noise, sample) pairs of a flow model",
                       description="Draw --pairs (noise, sample) pairs with the source and an accurate solver, "
                       "then train on the straight paths between them (initialised from the source).")
    _common(r)
    r.add_argument("--pairs", type=positive_int, default=100_000, help="pairs to draw (default 100000)")
    r.add_argument("--solver", default="rk4", help="solver of the pairs (default rk4)")
    r.add_argument("--sample-steps", type=positive_int, default=16, help="its steps (default 16)")
    r.add_argument("--no-init", action="store_true", help="start from fresh weights, not the source's")
    r.add_argument("--objective", choices=["velocity", "meanflow"], help="default velocity")


def _given(args: argparse.Namespace, keys: tuple[str, ...]) -> dict:
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _start(args: argparse.Namespace, overrides: dict, lineage) -> int:  # noqa: ANN001
    from ..lineage import load_source
    from ..modalities import modality_for_spec

    out = Path(args.out)
    if args.resume:
        modality, opts, cfg = resumed_options(out, {"steps": args.steps})
        return start_training(modality, args, opts, out, cfg)
    check_new_run(out)
    source = load_source(args.run, step=args.source_step)
    stored = source.config.get("cli")
    if not isinstance(stored, dict):
        raise UserError(f"{args.run} was not made by 'noise2data train', so its data cannot be reloaded")
    modality = modality_for_spec(stored["data"])
    opts = {**TRAIN_DEFAULTS, **modality.defaults, **stored, **overrides}
    opts["eval_every"] = 0  # the source's periodic evaluation would cost the new run's time
    return start_training(modality, args, opts, out, None, lambda ts: lineage(source, ts, out))


def distill_command(args: argparse.Namespace) -> int:
    from ..lineage import distill_lineage

    # distilling: the teacher's target is deterministic given x_t, so no outliers to damp (power 0) and the
    # flow part is already learned (r != t for 3 in 4 samples); measured in benchmarks/few_step.py
    overrides = {"objective": "meanflow", "steps": args.steps, "mf_power": 0.0, "mf_ratio": 0.75,
                 **_given(args, ("batch_size", "lr", "seed", "checkpoint_every", "device", "mf_ratio", "mf_power",
                                 "mf_jvp", "mf_guidance"))}
    teacher = not args.no_teacher
    return _start(args, overrides, lambda source, ts, out: distill_lineage(source, teacher_velocity=teacher))


def reflow_command(args: argparse.Namespace) -> int:
    from ..lineage import reflow_lineage
    from ..samplers import JUMP_SOLVERS, ODE_SOLVERS

    if args.solver not in ODE_SOLVERS or args.solver in JUMP_SOLVERS:
        raise UserError(f"unknown pair solver '{args.solver}': use one of "
                        f"{', '.join(s for s in ODE_SOLVERS if s not in JUMP_SOLVERS)}")
    overrides = {"objective": args.objective or "velocity", "steps": args.steps, "coupling": "independent",
                 **_given(args, ("batch_size", "lr", "seed", "checkpoint_every", "device"))}

    def lineage(source, ts, out):  # noqa: ANN001, ANN202
        cond = ts.cond if ts.guidable else None
        return reflow_lineage(source, out, cond, n=args.pairs, solver=args.solver, steps=args.sample_steps,
                              seed=overrides.get("seed", 0) + 1, init=not args.no_init)

    return _start(args, overrides, lineage)


FEWSTEP_COMMANDS = {"distill": distill_command, "reflow": reflow_command}
