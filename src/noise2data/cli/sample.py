"""The ``sample`` command: the options every modality shares, handed to the run's modality."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from .common import (
    add_guidance,
    add_guidance_interval,
    add_run_options,
    add_seed,
    add_solver_options,
    guidance_given,
    guidance_interval,
    positive_int,
    sampler_given,
    solver_steps,
)
from .extra import add_modality_options, modality_extra


def add_sample_command(sub: argparse._SubParsersAction) -> None:
    from ..modalities import all_modalities

    writes = "; ".join(f"{m.name}: {', '.join(m.sample_suffixes)}" for m in all_modalities())
    s = sub.add_parser("sample", help="sample a trained run", description="Sample a run and write the samples "
                       f"in the data's own units and layout ({writes}).")
    add_run_options(s)
    s.add_argument("--n", type=positive_int, default=1000, help="number of samples (default 1000)")
    add_solver_options(s, sde=True)
    add_seed(s)
    s.add_argument("--batch-size", type=positive_int, help="samples per batch (default: all at once)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    s.add_argument("--label", type=int, help="class to draw (a model trained with --labels)")
    s.add_argument("--condition", help="vector condition to draw for, K numbers as y1,y2,... (a model trained "
                   "with --cond-file)")
    add_guidance(s)
    add_guidance_interval(s)
    s.add_argument("--grid-per-class", type=positive_int,
                   help="images: a PNG grid with one row of this many samples per class (guided by --guidance)")
    s.add_argument("--out", required=True, help=f"output file, by the run's kind of data: {writes} (.npy/.npz: "
                   "samples in the data's units and layout; .png: a grid of images)")
    s.add_argument("--raw", action="store_true", help="images: write the model's tensor (channels first, [-1, 1]) "
                   "instead of the training data's units")
    s.add_argument("--plot", help="also write a PNG of the samples beside the training data")
    s.add_argument("--trajectory-plot", help="also write a PNG of trajectories from noise to data (images: a strip "
                   "of frames per sample)")
    s.add_argument("--trajectory-gif", help="images: also write an animated GIF of the samples from noise to data")
    add_modality_options(s, "sample")


def sample_command(args: argparse.Namespace) -> int:
    from ..modalities import SampleRequest
    from ..run import load_run

    condition = None
    if args.condition is not None:
        try:
            condition = tuple(float(v) for v in args.condition.split(","))
        except ValueError:
            raise UserError(f"--condition takes numbers y1,y2,...; got {args.condition!r}") from None
    run = load_run(args.run, ema=not args.no_ema, device=args.device, step=args.step)
    given = sampler_given(args)
    steps = solver_steps(args, run.config)
    guided = guidance_given(args)
    request = SampleRequest(
        n=args.n, out=Path(args.out), solver=args.solver, steps=steps, grid=args.grid, sde=args.sde,
        diffusion=args.diffusion, seed=args.seed, batch_size=args.batch_size, label=args.label, condition=condition,
        guidance=args.guidance, guidance_interval=guidance_interval(args, run.modality),
        grid_per_class=args.grid_per_class, raw=args.raw, plot=args.plot, trajectory_plot=args.trajectory_plot,
        trajectory_gif=args.trajectory_gif, sampler_given=given, guidance_given=guided)
    request = replace(request, extra=modality_extra(args, run.modality, "sample"))
    print(run.modality.sample(run, request), file=sys.stderr)
    return 0
