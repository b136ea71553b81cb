"""The ``sample`` command: points (.npy), image grids and trajectories (.png, .gif), molecules."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import UserError


def sample_command(args: argparse.Namespace) -> int:
    """``noise2data sample``: points (.npy), image grids (.png), molecules (.sdf/.xyz/.npz)."""
    from .cli_molecules import sample_molecule_run
    from .molecules.sampling import is_molecule_run
    from .run import load_run

    out = Path(args.out)
    run = load_run(args.run, ema=not args.no_ema, device=args.device, step=args.step)
    if is_molecule_run(run):
        return sample_molecule_run(args, run)
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out must name a .npy file (or .png for a grid of images), got {out}")
    if args.sde and args.diffusion < 0:
        raise UserError(f"--diffusion must be >= 0, got {args.diffusion}")
    try:
        interval = tuple(float(v) for v in args.guidance_interval.split(","))
        assert len(interval) == 2
    except (ValueError, AssertionError):
        raise UserError(f"--guidance-interval takes LO,HI, e.g. 0.2,0.8; got {args.guidance_interval!r}") from None
    label = args.label
    if label is not None and run.config["model"].get("cond_dim"):
        raise UserError(f"this run is conditioned on vectors of {run.config['model']['cond_dim']} numbers, not on "
                        "classes: pass --condition y1,y2,...")
    if args.condition is not None:
        if args.label is not None:
            raise UserError("give --label (a class) or --condition (a vector), not both")
        try:
            label = [float(v) for v in args.condition.split(",")]
        except ValueError:
            raise UserError(f"--condition takes numbers y1,y2,...; got {args.condition!r}") from None
    if label is None and args.guidance != 1.0 and not args.grid_per_class:
        raise UserError("--guidance needs --label or --condition (or --grid-per-class): guidance pulls samples "
                        "towards a condition")
    if args.trajectory_gif and (len(run.data_shape) != 3 or args.grid_per_class):
        raise UserError("--trajectory-gif animates image samples (not with --grid-per-class); this run's samples "
                        f"have shape {run.data_shape}")
    if out.suffix == ".png" and len(run.data_shape) != 3:
        raise UserError(f"a .png grid needs image samples (C, H, W); this run's are {run.data_shape}: use .npy")
    kw = dict(solver=args.solver, steps=args.steps, grid=args.grid, sde=args.sde, diffusion=args.diffusion,
              seed=args.seed, batch_size=args.batch_size, guidance=args.guidance, guidance_interval=interval)
    if args.grid_per_class:
        classes = run.config["model"].get("num_classes", 0)
        if not classes or out.suffix != ".png":
            raise UserError("--grid-per-class needs a class-conditional image run and a .png --out")
        # the same seed for every class and every checkpoint, so grids compare across runs
        rows = [run.sample(args.grid_per_class, label=k, **kw) for k in range(classes)]
        res = rows[0]
        x, ncol = torch.cat([r.x for r in rows]), args.grid_per_class
    else:
        res = run.sample(args.n, trajectory=bool(args.trajectory_plot or args.trajectory_gif), label=label, **kw)
        x, ncol = res.x, math.ceil(math.sqrt(args.n))
    if not torch.isfinite(x).all():
        raise UserError(f"sampling produced NaN/Inf ({args.solver}, {args.steps} steps): try more --steps "
                        "or another --solver; nothing was written")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        from .plotting import plot_image_grid

        plot_image_grid(x, out, ncol, value_range=_value_range(run, x))
    else:
        np.save(out, x.numpy())
    how = f"SDE g={args.diffusion}" if args.sde else args.solver
    if label is not None or args.grid_per_class:
        how += f", guidance {args.guidance:g}" + (f", condition {args.condition}" if args.condition else
                                                   f", label {label}" if label is not None else "")
    print(f"wrote {out} {tuple(x.shape)} ({how}, {res.nfe} NFE, step {run.step})", file=sys.stderr)
    if args.plot:
        from .plotting import plot_samples

        data = _reference_data(run)
        plot_samples(res.x, data, args.plot, title=f"{how}, {res.nfe} NFE")
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.trajectory_plot and res.trajectory is not None:
        from .plotting import plot_image_trajectory, plot_trajectories

        if len(run.data_shape) == 3:
            plot_image_trajectory(res.trajectory, res.times, args.trajectory_plot, value_range=_value_range(run, x))
        else:
            plot_trajectories(res.trajectory, res.times, args.trajectory_plot)
        print(f"wrote {args.trajectory_plot}", file=sys.stderr)
    if args.trajectory_gif and res.trajectory is not None:
        from .plotting import save_trajectory_gif

        save_trajectory_gif(res.trajectory[:, :64], args.trajectory_gif, value_range=_value_range(run, x))
        print(f"wrote {args.trajectory_gif}", file=sys.stderr)
    return 0


def _value_range(run, x: torch.Tensor) -> tuple[float, float]:  # noqa: ANN001
    """Pixel range for a grid: [-1, 1] for the built-in image sets, else the samples' own range."""
    from .data import is_image_dataset

    if is_image_dataset(run.config.get("cli", {}).get("data", "")):
        return -1.0, 1.0
    return float(x.min()), float(x.max()) if float(x.max()) > float(x.min()) else float(x.min()) + 1


def _reference_data(run) -> torch.Tensor | None:
    """Training data to plot beside samples, when it can still be had."""
    from .data import load_data

    cli = run.config.get("cli", {})
    try:
        data = load_data(cli["data"], n=cli.get("n_data", 100_000), seed=cli.get("seed", 0), key=cli.get("key"))
    except (UserError, KeyError):
        return None
    return data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:4000]]
