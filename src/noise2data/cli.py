"""The ``noise2data`` command line: thin; it builds configs and calls the library.

User mistakes end in one line on stderr, ``noise2data: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from . import __version__
from .cli_eval import EVALUATION_COMMANDS, add_evaluation_commands
from .cli_molecules import add_molecule_commands, build_data
from .cli_sample import sample_command
from .errors import MissingExtraError, UserError, require
from .training.distributed import init_distributed, leave_worker, shutdown_distributed

TRAIN_DEFAULTS = {
    "steps": 5000, "batch_size": 512, "lr": 2e-3, "path": "condot", "objective": "velocity",
    "time_dist": "uniform", "hidden": 256, "depth": 4, "time_embedding": "sinusoidal", "seed": 0,
    "device": "auto", "n_data": 100_000, "standardize": "feature", "ema_decay": 0.999, "grad_clip": 1.0,
    "checkpoint_every": 1000, "keep": 3, "key": None, "coupling": "independent",
    "lr_schedule": "cosine", "warmup_steps": 100, "eval_every": 0, "eval_metrics": "w2,mmd", "eval_n": 1000,
    "tensorboard": False, "dequantize": 0.0, "precision": "fp32", "compile": False, "skip_nonfinite": False,
    "labels": None, "label_key": None, "label_dropout": 0.1, "model": "mlp", "preset": "tiny", "cond": "none",
    "cond_file": None, "cond_key": None, "resize": None, "pad": 0, "hflip": False, "stream": False,
}
# Settings that define the model and its training problem: a resumed run must not change them.
FIXED_ON_RESUME = (
    "data", "key", "n_data", "standardize", "path", "objective", "hidden", "depth", "time_embedding",
    "time_dist", "coupling", "batch_size", "lr", "lr_schedule", "warmup_steps", "ema_decay", "grad_clip", "seed",
    "dequantize", "labels", "label_key", "label_dropout", "model", "preset", "cond", "cond_file", "cond_key",
    "resize", "pad", "hflip",
)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at --help."""

    def error(self, message: str):  # noqa: ANN201 - never returns
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="noise2data", description="Flow matching and diffusion on any tensor data.")
    p.add_argument("--version", action="version", version=f"noise2data {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model on a dataset", description="Train a model; writes "
                       "config.json, checkpoints/ and metrics.jsonl into --out.")
    t.add_argument("--data", help="toy name (checkerboard, moons, circles, 8gaussians, spirals), "
                   "gmm:FILE.json, an array file (.npy, .npz, .pt, .csv) of shape (N, *D), or images: digits, "
                   "mnist:DIR (IDX files), images:FOLDER (PNG/JPEG, subfolders as classes), images:FILE.npz; or "
                   "molecules:FILE.npz (from 'noise2data data qm9')")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--key", help="array name inside a .npz/.pt file holding several")
    t.add_argument("--n-data", type=_positive_int, help="samples drawn for toy/mixture data (default 100000)")
    t.add_argument("--standardize", choices=["feature", "global", "none"], help="data scaling (default feature)")
    t.add_argument("--steps", type=_positive_int, help="optimiser steps in all (default 5000)")
    t.add_argument("--batch-size", type=_positive_int, help="default 512")
    t.add_argument("--lr", type=float, help="AdamW learning rate (default 2e-3)")
    t.add_argument("--lr-schedule", choices=["cosine", "constant"], help="decay of the lr (default cosine)")
    t.add_argument("--warmup-steps", type=int, help="linear lr warm-up steps (default 100)")
    t.add_argument("--path", help="schedule: condot, cosine, polynomial, vp, ve, with parameters as "
                   "name:key=value, e.g. ve:sigma_max=10 (default condot)")
    t.add_argument("--objective", choices=["velocity", "noise", "data", "score"],
                   help="what the model predicts; velocity = flow matching (default)")
    t.add_argument("--time-dist", help="uniform or logit_normal[:mean,std] (default uniform)")
    t.add_argument("--coupling", choices=["independent", "ot"],
                   help="noise-data pairing in a batch; ot = minibatch optimal transport (default independent)")
    t.add_argument("--hidden", type=_positive_int, help="MLP width (default 256)")
    t.add_argument("--depth", type=_positive_int, help="MLP residual blocks (default 4)")
    t.add_argument("--time-embedding", choices=["sinusoidal", "fourier"], help="default sinusoidal")
    t.add_argument("--ema-decay", type=float, help="default 0.999")
    t.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1.0)")
    t.add_argument("--checkpoint-every", type=_positive_int, help="default 1000")
    t.add_argument("--keep", type=_positive_int, help="checkpoints to keep (default 3)")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--device", help="auto, cpu, cuda, cuda:N (default auto)")
    t.add_argument("--model", choices=["mlp", "unet", "dit", "egnn"],
                   help="network: mlp (any shape, default), unet or dit (images), egnn (molecules)")
    t.add_argument("--preset", choices=["tiny", "small", "base"], help="U-Net/DiT size: tiny for a CPU (default), "
                   "small and base for GPUs")
    t.add_argument("--cond", choices=["none", "label"], help="label: condition on the class labels of an image "
                   "dataset (digits, mnist:DIR, class subfolders, an npz's labels; other data: --labels FILE)")
    t.add_argument("--cond-file", help="vector conditions, one row of k numbers per sample (.csv with k columns, "
                   ".npy/.npz/.pt of shape (N, k)): a model of p(x | y) for y in R^k, with guidance")
    t.add_argument("--cond-key", help="array name of the conditions inside a .npz/.pt holding several")
    t.add_argument("--resize", type=_positive_int, help="images: resize to N x N (antialiased)")
    t.add_argument("--pad", type=int, help="images: pad every side by this many background pixels, e.g. 2 for "
                   "MNIST 28 -> 32")
    t.add_argument("--hflip", action="store_true", default=None, help="images: random left-right mirroring")
    t.add_argument("--stream", action="store_true", default=None, help="images:FOLDER: decode images per batch "
                   "instead of holding them in memory (automatic above 4 GiB of pixels)")
    t.add_argument("--labels", help="class labels, one integer per sample (.npy/.npz/.pt/.csv): trains a "
                   "class-conditional model for guided sampling")
    t.add_argument("--label-key", help="array name of the labels inside a .npz/.pt holding several")
    t.add_argument("--label-dropout", type=float, help="probability of dropping a label to the null class, for "
                   "classifier-free guidance (default 0.1)")
    t.add_argument("--dequantize", type=float, help="discrete data on a grid of this spacing (e.g. 1 for integer "
                   "pixels): train on uniformly dequantised batches (default 0: off)")
    t.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="autocast precision (default fp32)")
    t.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    t.add_argument("--skip-nonfinite", action="store_true", default=None,
                   help="skip (and count) steps with a non-finite loss or gradient instead of stopping")
    t.add_argument("--eval-every", type=int, help="steps between evaluations of the EMA model, logged to "
                   "metrics.jsonl (default 0: none)")
    t.add_argument("--eval-metrics", help="metrics for --eval-every (default w2,mmd)")
    t.add_argument("--eval-n", type=_positive_int, help="samples per periodic evaluation (default 1000)")
    t.add_argument("--tensorboard", action="store_true", default=None,
                   help="also log to RUN/tensorboard (needs the tensorboard package)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="sample a trained run", description="Sample a run; writes an .npy "
                       "of shape (n, *D) in data units, and optional plots.")
    s.add_argument("run", help="run folder")
    s.add_argument("--n", type=_positive_int, default=1000, help="number of samples (default 1000)")
    s.add_argument("--solver", default="heun", help="euler, midpoint, heun, rk4, dopri5 (default heun)")
    s.add_argument("--steps", type=_positive_int, default=8, help="solver steps (default 8)")
    s.add_argument("--grid", default="uniform", choices=["uniform", "edm"], help="time grid (default uniform)")
    s.add_argument("--sde", action="store_true", help="Euler-Maruyama on the SDE extension instead of an ODE")
    s.add_argument("--diffusion", type=float, default=0.5, help="SDE diffusion coefficient g (default 0.5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=_positive_int, help="samples per batch (default: all at once)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    s.add_argument("--step", type=int, help="the checkpoint of this step (default: the newest)")
    s.add_argument("--device", default="auto")
    s.add_argument("--label", type=int, help="class to draw (a model trained with --labels)")
    s.add_argument("--condition", help="vector condition to draw for, K numbers as y1,y2,... (a model trained "
                   "with --cond-file)")
    s.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance scale w: 0 unconditional, 1 conditional (default), > 1 stronger")
    s.add_argument("--guidance-interval", default="0,1", help="apply guidance only for t in LO,HI (default 0,1)")
    s.add_argument("--grid-per-class", type=_positive_int,
                   help="images: a PNG grid with one row of this many samples per class (guided by --guidance)")
    s.add_argument("--out", required=True, help="output .npy file, or .png for a grid of image samples")
    s.add_argument("--plot", help="also write a PNG of the samples beside the training data")
    s.add_argument("--trajectory-plot", help="also write a PNG of trajectories from noise to data (images: a strip "
                   "of frames per sample)")
    s.add_argument("--trajectory-gif", help="images: also write an animated GIF of the samples from noise to data")

    pp = sub.add_parser("plot-path", help="plot the marginals p_t of a path on a dataset")
    pp.add_argument("--data", required=True, help="as for train")
    pp.add_argument("--path", default="condot", help="schedule spec (default condot)")
    pp.add_argument("--key")
    pp.add_argument("--n", type=_positive_int, default=20000)
    pp.add_argument("--out", required=True, help="output PNG")
    add_evaluation_commands(sub, _positive_int)
    add_molecule_commands(sub, _positive_int)
    return p


def _time_dist(spec: str) -> dict:
    name, _, rest = spec.partition(":")
    if not rest:
        return {"name": name}
    try:
        mean, std = (float(v) for v in rest.split(","))
    except ValueError:
        raise UserError(f"bad --time-dist {spec!r}: write logit_normal:MEAN,STD, e.g. logit_normal:0,1") from None
    return {"name": name, "mean": mean, "std": std}


def _train(args: argparse.Namespace) -> int:
    from .data import is_image_dataset
    from .run import read_run_config
    from .training import list_checkpoints

    out = Path(args.out)
    given = {k: v for k, v in vars(args).items() if v is not None and k in (*TRAIN_DEFAULTS, "data")}
    if args.resume:
        cfg = read_run_config(out)
        stored = cfg.get("cli")
        if not isinstance(stored, dict):
            raise UserError(f"{out} was not created by 'noise2data train': resume it from Python with "
                            "train(..., run_dir=..., resume=True)")
        for k in FIXED_ON_RESUME:
            if k in given and given[k] != stored.get(k):
                raise UserError(f"--{k.replace('_', '-')} {given[k]} differs from the run's {stored.get(k)}: "
                                "a resumed run keeps its data, model and optimiser settings")
        opts = {**TRAIN_DEFAULTS, **stored, **given}  # settings added since the run began take defaults
    else:
        if not args.data:
            raise UserError("train needs --data (a toy name, gmm:FILE.json or an array file)")
        if list_checkpoints(out):  # a config.json alone (a run that never checkpointed) is replaced
            raise UserError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
        opts = {**TRAIN_DEFAULTS, **given}
        if is_image_dataset(opts["data"]) and "standardize" not in given:
            opts["standardize"] = "none"  # already in [-1, 1]; per-pixel statistics would distort images

    ctx, device = init_distributed(opts["device"])  # a no-op unless started by torchrun
    try:
        if opts["data"].startswith("molecules:"):
            from .cli_molecules import train_molecules

            if ctx.active:
                raise UserError("molecule training runs in one process for now: start it without torchrun")
            return train_molecules(opts, out, args.resume, not args.no_progress, device,
                                   cfg if args.resume else None)
        code = _train_run(args, opts, out, ctx, device, cfg if args.resume else None)
    finally:
        shutdown_distributed()
    if ctx.active:
        leave_worker(code)
    return code


def _train_run(args: argparse.Namespace, opts: dict, out: Path, ctx, device: str, cfg: dict | None) -> int:  # noqa: ANN001
    from .data import Standardizer, image_dataset, is_image_dataset, load_conditions, load_data, load_labels
    from .data.image_files import ImageSource
    from .evaluation import periodic_evaluator
    from .models import MODELS, MLPConfig, build_model
    from .paths import make_path
    from .run import write_run_config
    from .training import TrainConfig, resolve_device, train

    image_data = is_image_dataset(opts["data"])
    if image_data:  # in [-1, 1], with their labels when the dataset has them
        data, own_labels = image_dataset(opts["data"], resize=opts["resize"], pad=opts["pad"],
                                         stream=bool(opts["stream"]))
    else:
        if opts["resize"] or opts["pad"] or opts["hflip"] or opts["stream"]:
            raise UserError("--resize, --pad, --hflip and --stream apply to image datasets (digits, mnist:DIR, "
                            f"images:...), not to {opts['data']}")
        data, own_labels = load_data(opts["data"], n=opts["n_data"], seed=opts["seed"], key=opts["key"]), None
    if cfg is not None and list(data.shape[1:]) != list(cfg["data"]["shape"]):
        raise UserError(f"the data {opts['data']} now has points of shape {tuple(data.shape[1:])}, but the run was "
                        f"trained on {tuple(cfg['data']['shape'])}: resume with the same data, or train a new run")
    streaming = isinstance(data, ImageSource)
    if streaming and opts["standardize"] != "none":
        raise UserError("streamed images are used in [-1, 1] as they are: pass --standardize none")
    stats = Standardizer.identity(tuple(data.shape[1:])) if streaming else Standardizer.fit(data, opts["standardize"])
    labels = load_labels(opts["labels"], len(data), opts["label_key"]) if opts["labels"] else None
    if labels is None and opts["cond"] == "label":
        if own_labels is None:
            raise UserError(f"--cond label uses the labels of an image dataset with classes; {opts['data']} has "
                            "none: pass --labels FILE")
        labels = own_labels
    conds = load_conditions(opts["cond_file"], len(data), opts["cond_key"]) if opts["cond_file"] else None
    if conds is not None and labels is not None:
        raise UserError("a model takes class labels or vector conditions (--cond-file), not both")
    num_classes = int(labels.max()) + 1 if labels is not None else 0
    cond_dim = conds.shape[1] if conds is not None else 0
    path = make_path(opts["path"])
    tcfg = TrainConfig(steps=opts["steps"], batch_size=opts["batch_size"], lr=opts["lr"],
                       objective=opts["objective"], time_dist=_time_dist(opts["time_dist"]),
                       coupling=opts["coupling"], lr_schedule=opts["lr_schedule"],
                       warmup_steps=opts["warmup_steps"],
                       seed=opts["seed"], ema_decay=opts["ema_decay"], grad_clip=opts["grad_clip"],
                       checkpoint_every=opts["checkpoint_every"], keep=opts["keep"], device=device,
                       eval_every=opts["eval_every"], dequantize=opts["dequantize"], precision=opts["precision"],
                       compile=bool(opts["compile"]), skip_nonfinite=bool(opts["skip_nonfinite"]),
                       label_dropout=opts["label_dropout"] if labels is not None or conds is not None else 0.0,
                       hflip=bool(opts["hflip"]))
    cond_kw = {"time_embedding": opts["time_embedding"], "num_classes": num_classes, "cond_dim": cond_dim}
    if opts["model"] in ("unet", "dit"):
        mcfg = MODELS[opts["model"]][1].preset(opts["preset"], tuple(data.shape[1:]), **cond_kw)
    else:
        mcfg = MLPConfig(data_shape=tuple(data.shape[1:]), hidden=opts["hidden"], depth=opts["depth"], **cond_kw)
    resolve_device(tcfg.device)  # fail before anything is written
    if opts["tensorboard"]:
        require("tensorboard", "tensorboard", "--tensorboard")
    if ctx.active:
        ctx.part(tcfg.batch_size)  # the global batch must split evenly over the processes
    torch.manual_seed(opts["seed"])
    model = build_model(mcfg.to_dict())
    if ctx.is_main and not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        write_run_config(out, {
            "data": {"spec": opts["data"], "shape": list(data.shape[1:]), "n": len(data),
                     "standardize": opts["standardize"], "labels": opts["labels"], "num_classes": num_classes,
                     "cond_dim": cond_dim},
            "path": path.spec(), "model": mcfg.to_dict(), "train": tcfg.to_dict(), "cli": opts,
        })
    elif ctx.is_main and opts["steps"] != cfg["train"]["steps"]:
        write_run_config(out, {**{k: v for k, v in cfg.items() if k != "noise2data_version"},
                               "train": tcfg.to_dict(), "cli": opts})
    ctx.barrier()  # config.json is written before anyone reads it
    n_params = sum(p.numel() for p in model.parameters())
    if ctx.is_main:
        procs = f", {ctx.world_size} processes of {tcfg.batch_size // ctx.world_size}" if ctx.active else ""
        print(f"training {n_params:,}-parameter {opts['model'].upper()} on {opts['data']} {tuple(data.shape)} "
              f"({tcfg.objective} objective, {opts['path']} path{procs}) -> {out}", file=sys.stderr)
    evaluator = periodic_evaluator(out, opts, stats) if opts["eval_every"] and ctx.is_main else None
    result = train(model, path, data if streaming else stats.forward(data), tcfg, run_dir=out, standardizer=stats,
                   resume=args.resume, progress=not args.no_progress, evaluator=evaluator,
                   tensorboard=bool(opts["tensorboard"]), labels=labels if labels is not None else conds)
    final = result.log[-1][1] if result.log else float("nan")
    if ctx.is_main:
        skips = f", {result.skipped} non-finite steps skipped" if result.skipped else ""
        print(f"done: step {result.step}, final loss {final:.4f}, {result.steps_per_sec:.1f} steps/s{skips}",
              file=sys.stderr)
    return 0


def _plot_path(args: argparse.Namespace) -> int:
    from .data import load_data
    from .paths import make_path
    from .plotting import plot_path_marginals

    data = load_data(args.data, n=args.n, key=args.key)
    plot_path_marginals(make_path(args.path), data[: args.n], args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


COMMANDS = {"train": _train, "sample": sample_command, "plot-path": _plot_path, "data": build_data,
            **EVALUATION_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 for a user error)."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UserError, MissingExtraError) as exc:
        print(f"noise2data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noise2data: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Entry point of the ``noise2data`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
