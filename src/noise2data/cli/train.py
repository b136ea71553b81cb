"""The ``train`` command (with ``--config FILE``) and ``plot-path``.

Training options come, in rising precedence, from the generic defaults, the defaults of the kind
of data, a ``--config`` file, and the command line (:mod:`.train_options`). Everything about the
data (loading, condition, prior, model) is asked of the modality that owns ``--data``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..errors import UserError, require
from ..modalities.registry import all_modalities, model_names
from ..training.distributed import init_distributed, leave_worker, shutdown_distributed
from .common import coupling_name, non_negative_int, positive_float, positive_int
from .train_options import FIXED_ON_RESUME, OPTION_NAMES, OWN_FLAGS, TIME_BUDGET_STEP_CAP, TRAIN_DEFAULTS

__all__ = ["add_train_command", "plot_path_command", "train_command"]


def _default(key: str) -> str:
    """``(default X; for KIND Y, ...)``: the generic default and the kinds of data that set their own."""
    own = [f"{m.name} {m.defaults[key]}" for m in all_modalities() if key in m.defaults]
    if TRAIN_DEFAULTS[key] is None:
        return f"(default: {', '.join(own)})"
    return f"(default {TRAIN_DEFAULTS[key]}" + (f"; {', '.join(own)})" if own else ")")


def data_help() -> str:
    return "; ".join(m.data_help for m in all_modalities())


def add_train_command(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model on a dataset", description="Train a model; writes "
                       "config.json, checkpoints/ and metrics.jsonl into --out.")
    t.add_argument("--data", help="what to train on; the kind of data follows from it: " + data_help())
    t.add_argument("--config", help="a TOML or JSON file of training options keyed by the flags' names (flags on the "
                   "command line win); a run's own config.json repeats that run")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--key", help="array name inside a .npz/.pt file holding several")
    t.add_argument("--n-data", type=positive_int, help="samples drawn for toy/mixture data (default 100000)")
    t.add_argument("--standardize", choices=["feature", "global", "none"], help="data scaling "
                   + _default("standardize"))
    t.add_argument("--steps", type=positive_int, help="optimiser steps in all " + _default("steps"))
    t.add_argument("--minutes", type=positive_float, help="a wall-clock budget: train for this many minutes "
                   "(checkpoint writes not counted), the lr's cosine following the time spent; --steps, if given, "
                   "is then a cap (default: none, --steps ends the run)")
    t.add_argument("--batch-size", type=positive_int, help=_default("batch_size"))
    t.add_argument("--lr", type=float, help="AdamW learning rate " + _default("lr"))
    t.add_argument("--lr-schedule", choices=["cosine", "constant"], help="decay of the lr (default cosine)")
    t.add_argument("--warmup-steps", type=int, help="linear lr warm-up steps (default 100)")
    t.add_argument("--path", help="schedule: condot, cosine, polynomial, vp, ve, with parameters as "
                   "name:key=value, e.g. ve:sigma_max=10 (default condot)")
    t.add_argument("--objective", choices=["velocity", "noise", "data", "score", "meanflow"],
                   help="what the model predicts; velocity = flow matching (default); meanflow = the average velocity "
                   "over a jump [t, r], for sampling in 1, 2 or a few steps (time embedding smooth by default)")
    t.add_argument("--mf-ratio", type=float, help="meanflow: share of samples with r != t (default 0.25)")
    t.add_argument("--mf-power", type=float, help="meanflow: adaptive loss weight 1/(mse + 1e-3)^p, 0 = plain MSE "
                   "(default 1)")
    t.add_argument("--mf-jvp", choices=["forward", "backward", "fd"], help="meanflow: d/dt of the model by "
                   "forward-mode AD (default), double backward (exact, for ops without forward AD) or finite "
                   "differences")
    t.add_argument("--mf-guidance", type=float, help="meanflow with labels: classifier-free guidance scale baked into "
                   "the target, so guided samples cost 1 evaluation (default 1: none)")
    t.add_argument("--time-dist", help="uniform, logit_normal[:mean,std] or beta:a,b (a, b >= 1; beta:2,1 favours "
                   "the data end) " + _default("time_dist"))
    t.add_argument("--coupling", type=coupling_name,
                   help="noise-data pairing in a batch: auto, independent, ot, ot-blocks[:N]; ot = minibatch optimal "
                   "transport (exact; within each class for a labelled run), ot-blocks = the same solved in blocks "
                   "of 64, or of N points (1.2-1.3x an independent step at 64, near-optimal); "
                   "default auto: ot-blocks for 1- and 2-D vectors (straighter paths, better at few evaluations), "
                   "ot for image jump models (--objective meanflow), independent otherwise")
    t.add_argument("--hidden", type=positive_int, help="MLP width (default 256)")
    t.add_argument("--depth", type=positive_int, help="MLP residual blocks (default 4)")
    t.add_argument("--x-octaves", type=non_negative_int, help="MLP: also feed sin and cos of pi 2^k x, k < K, of "
                   "each coordinate (finer detail; default 4 for 1- and 2-D vectors, 0 otherwise)")
    t.add_argument("--time-embedding", choices=["sinusoidal", "fourier", "smooth"],
                   help="default sinusoidal; smooth (10x not 1000x frequencies) for meanflow")
    t.add_argument("--ema-decay", type=float, help="default 0.999; step k uses min(decay, (1 + k) / (10 + k)), a "
                   "warm-up that reaches 0.999 only after about 9000 steps")
    t.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1.0)")
    t.add_argument("--checkpoint-every", type=positive_int, help="default 1000")
    t.add_argument("--keep", type=positive_int, help="checkpoints to keep (default 3)")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--device", help="auto, cpu, cuda, cuda:N (default auto)")
    t.add_argument("--model", choices=model_names(), help="network (default: the kind of data's own: "
                   + ", ".join(f"{m.models[0]} for {m.name}" for m in all_modalities()) + ")")
    t.add_argument("--preset", choices=["tiny", "small", "base"], help="network size: tiny for a CPU "
                   "(default), small and base for GPUs")
    t.add_argument("--cond", choices=["none", "label"], help="label: condition on the class labels of an image "
                   "dataset (digits, mnist:DIR, class subfolders, an npz's labels; other data: --labels FILE)")
    t.add_argument("--cond-file", help="vector conditions, one row of k numbers per sample (.csv with k columns, "
                   ".npy/.npz/.pt of shape (N, k)): a model of p(x | y) for y in R^k, with guidance")
    t.add_argument("--cond-key", help="array name of the conditions inside a .npz/.pt holding several")
    t.add_argument("--resize", type=positive_int, help="images: resize to N x N (antialiased)")
    t.add_argument("--pad", type=int, help="images: pad every side by this many background pixels, e.g. 2 for "
                   "MNIST 28 -> 32")
    t.add_argument("--size-bands", type=positive_int, help="samples of varying size: draw each batch from one of K "
                   "bands of sizes, so the network computes on real entries, not padding (1 = random batches) "
                   + _default("size_bands"))
    t.add_argument("--rbf", type=non_negative_int, help="graph networks: K Gaussian radial basis functions of each "
                   "pair distance as edge features (0 = the squared distance alone) " + _default("rbf"))
    t.add_argument("--self-condition", action=argparse.BooleanOptionalAction, default=None,
                   help="data-predicting graph networks: also read the network's own previous estimate of the "
                   "sample (trained on half the batches; sampling hands each evaluation the last estimate) "
                   + _default("self_condition"))
    t.add_argument("--position-weight", help="data-predicting graph networks: weight of the position error by "
                   "time, uniform, min-snr:G (min(SNR_t, G)), snr+1:G (min(SNR_t + 1, G)) or auto (min-snr:5 "
                   "with a data prediction) "
                   + _default("position_weight"))
    t.add_argument("--bounce", action=argparse.BooleanOptionalAction, default=None,
                   help="video: beyond the known frames, reflect the moved known frame where content turns back in "
                   "the training clips (on in the tiny preset for clips of objects on a flat background; "
                   "--no-bounce where objects leave the frame)")
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
    t.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="autocast precision; on the CPU fp16 runs many times slower than fp32 (default fp32)")
    t.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    t.add_argument("--skip-nonfinite", action="store_true", default=None,
                   help="skip (and count) steps with a non-finite loss or gradient instead of stopping")
    t.add_argument("--eval-every", type=int, help="steps between evaluations of the EMA model, logged to "
                   "metrics.jsonl (default 0: none)")
    t.add_argument("--eval-metrics", help="metrics for --eval-every (default w2,mmd)")
    t.add_argument("--eval-n", type=positive_int, help="samples per periodic evaluation (default 1000)")
    t.add_argument("--tensorboard", action="store_true", default=None,
                   help="also log to RUN/tensorboard (needs the tensorboard package)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


    pp = sub.add_parser("plot-path", help="plot the marginals p_t of a path on a dataset")
    pp.add_argument("--data", required=True, help="as for train")
    pp.add_argument("--path", default="condot", help="schedule spec (default condot)")
    pp.add_argument("--key")
    pp.add_argument("--n", type=positive_int, default=20000)
    pp.add_argument("--out", required=True, help="output PNG")


def _time_dist(spec: str) -> dict:
    name, _, rest = spec.partition(":")
    if not rest:
        return {"name": name}
    try:
        first, second = (float(v) for v in rest.split(","))
    except ValueError:
        raise UserError(f"bad --time-dist {spec!r}: write logit_normal:MEAN,STD (e.g. logit_normal:0,1) or beta:A,B "
                        "(e.g. beta:2,1)") from None
    return {"name": name, "a": first, "b": second} if name == "beta" else {"name": name, "mean": first, "std": second}


def resumed_options(out: Path, given: dict) -> tuple:
    """``(modality, options, config)`` of the run in ``out``, for ``--resume`` with the command line's ``given``."""
    from ..modalities import modality_for_spec
    from ..run import read_run_config

    cfg = read_run_config(out)
    stored = cfg.get("cli")
    if not isinstance(stored, dict):
        raise UserError(f"{out} was not created by 'noise2data train': resume it from Python with "
                        "train(..., run_dir=..., resume=True)")
    for k in FIXED_ON_RESUME:
        if k in given and given[k] != stored.get(k):
            raise UserError(f"--{k.replace('_', '-')} {given[k]} differs from the run's {stored.get(k)}: "
                            "a resumed run keeps its data, model and optimiser settings")
    _check_resume_steps(out, given)
    modality = modality_for_spec(stored["data"])
    # settings added since the run began take defaults
    return modality, {**TRAIN_DEFAULTS, **modality.defaults, **stored, **given}, cfg


def _check_resume_steps(out: Path, given: dict) -> None:
    """Refuse ``--resume --steps N`` below the step the run has reached: it would train nothing and leave
    config.json claiming fewer steps than the checkpoints hold."""
    from ..training import checkpoint_step, list_checkpoints

    checkpoints = list_checkpoints(out)
    if "steps" not in given or not checkpoints:
        return
    step = checkpoint_step(checkpoints[-1])
    if given["steps"] < step:
        raise UserError(f"{out} is already at step {step}: --steps {given['steps']} is the total to train to, "
                        f"not more steps; pass --steps larger than {step} to continue")


def check_new_run(out: Path) -> None:
    from ..training import list_checkpoints

    if list_checkpoints(out):  # a config.json alone (a run that never checkpointed) is replaced
        raise UserError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")


def train_command(args: argparse.Namespace) -> int:
    from ..modalities import modality_for_spec

    out = Path(args.out)
    given = {k: v for k, v in vars(args).items() if v is not None and k in OPTION_NAMES}
    cfg = None
    if args.resume:
        modality, opts, cfg = resumed_options(out, given)
    else:
        if not args.data:
            raise UserError("train needs --data: " + data_help())
        check_new_run(out)
        modality = modality_for_spec(args.data)
        foreign = [flag for key, flag in OWN_FLAGS.items() if key in given and key not in modality.own_train_options]
        if foreign:
            raise UserError(f"{', '.join(foreign)} does not apply to {modality.name} data")
        opts = {**TRAIN_DEFAULTS, **modality.defaults, **given}
        if opts["minutes"] and "steps" not in given:
            opts["steps"] = TIME_BUDGET_STEP_CAP  # the clock ends the run
        if opts["objective"] == "meanflow" and "time_embedding" not in given:
            opts["time_embedding"] = "smooth"  # MeanFlow's target differentiates in t (models/embeddings.py)
    return start_training(modality, args, opts, out, cfg)


def start_training(modality, args: argparse.Namespace, opts: dict, out: Path, cfg: dict | None,  # noqa: ANN001
                   lineage=None) -> int:  # noqa: ANN001
    """Train in this process, or in each process torchrun started; the exit status."""
    ctx, device = init_distributed(opts["device"])  # a no-op unless started by torchrun
    try:
        code = _train_run(modality, args, opts, out, ctx, device, cfg, lineage)
    finally:
        shutdown_distributed()
    if ctx.active:
        leave_worker(code)
    return code


def _train_run(modality, args: argparse.Namespace, opts: dict, out: Path, ctx, device: str,  # noqa: ANN001
               cfg: dict | None, lineage=None) -> int:  # noqa: ANN001
    """Train (or resume) the run in ``out``; ``lineage(training_set) -> Lineage`` makes it a derived run
    (distillation, reflow; see :mod:`noise2data.lineage`), which a resume rebuilds from config.json."""
    from ..evaluation import periodic_evaluator
    from ..lineage import resumed_lineage
    from ..models import build_model
    from ..paths import make_path
    from ..run import write_run_config
    from ..training import TrainConfig, resolve_device, train

    if ctx.active and not modality.distributed:
        raise UserError(f"{modality.name} training runs in one process for now: start it without torchrun")
    ts = modality.load(opts, cfg)
    derived = lineage(ts) if lineage is not None else resumed_lineage(cfg, out) if cfg is not None else None
    data, labels = ts.data, ts.cond
    if derived is not None and derived.data is not None:  # reflow: the source's samples and their noise
        if ts.noise is not None or ts.batch_condition is not None:
            raise UserError(f"reflow of {modality.name} runs is not supported (their noise or condition is drawn per "
                            "batch); distill the run instead")
        ts.standardizer, data, labels = derived.source.standardizer, derived.data, derived.cond  # model units
    if derived is not None and ctx.is_main:
        for note in derived.notes:
            print(f"warning: {note}", file=sys.stderr)
    shape = tuple(ts.data.shape[1:])
    if cfg is not None and list(shape) != list(cfg["data"]["shape"]):
        raise UserError(f"the data {opts['data']} now has points of shape {shape}, but the run was "
                        f"trained on {tuple(cfg['data']['shape'])}: resume with the same data, or train a new run")
    if opts["coupling"] == "auto":  # resolved once, so config.json and a resume keep what was used
        opts["coupling"] = modality.default_coupling(shape, opts["objective"])
    path = make_path(opts["path"])
    tcfg = TrainConfig(steps=opts["steps"], minutes=float(opts["minutes"] or 0.0), batch_size=opts["batch_size"],
                       lr=opts["lr"],
                       objective=opts["objective"], time_dist=_time_dist(opts["time_dist"]),
                       coupling=opts["coupling"], lr_schedule=opts["lr_schedule"],
                       warmup_steps=opts["warmup_steps"],
                       seed=opts["seed"], ema_decay=opts["ema_decay"], grad_clip=opts["grad_clip"],
                       checkpoint_every=opts["checkpoint_every"], keep=opts["keep"], device=device,
                       eval_every=opts["eval_every"], dequantize=opts["dequantize"], precision=opts["precision"],
                       compile=bool(opts["compile"]), skip_nonfinite=bool(opts["skip_nonfinite"]),
                       label_dropout=opts["label_dropout"] if ts.guidable else 0.0,
                       hflip=bool(opts["hflip"]),
                       mean_flow={"ratio": opts["mf_ratio"], "power": opts["mf_power"], "jvp": opts["mf_jvp"],
                                  "guidance": opts["mf_guidance"]})
    resolve_device(tcfg.device)  # fail before anything is written
    if opts["tensorboard"]:
        require("tensorboard", "tensorboard", "--tensorboard")
    if ctx.active:
        ctx.part(tcfg.batch_size)  # the global batch must split evenly over the processes
    torch.manual_seed(opts["seed"])
    # a derived run starts from its source's network; a resumed run keeps the one it was built with, whatever
    # the presets and defaults say today
    model_config = (dict(derived.source.config["model"]) if derived is not None
                    else dict(cfg["model"]) if cfg is not None else ts.model_config)
    model_config = {**model_config, "mean_flow": True} if tcfg.objective == "meanflow" else model_config
    model = build_model(model_config)
    if ctx.is_main and not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        write_run_config(out, {
            "modality": modality.name,
            "data": {"spec": opts["data"], "shape": list(shape), "n": len(ts.data), "standardize": opts["standardize"],
                     **ts.data_config},
            "path": path.spec(), "model": model_config, "train": tcfg.to_dict(), "cli": opts, **ts.extra_config,
            **(derived.section if derived is not None else {}),
        })
    elif ctx.is_main and (opts["steps"], tcfg.minutes) != (cfg["train"]["steps"], cfg["train"].get("minutes", 0.0)):
        write_run_config(out, {**{k: v for k, v in cfg.items() if k != "noise2data_version"},
                               "train": tcfg.to_dict(), "cli": opts})
    ctx.barrier()  # config.json is written before anyone reads it
    n_params = sum(p.numel() for p in model.parameters())
    if ctx.is_main:
        procs = f", {ctx.world_size} processes of {tcfg.batch_size // ctx.world_size}" if ctx.active else ""
        print(f"training {n_params:,}-parameter {opts['model'].upper()} on {modality.name} {opts['data']} "
              f"{(len(data), *shape)} ({tcfg.objective} objective, {opts['path']} path, {tcfg.coupling} coupling"
              f"{procs}) -> {out}",
              file=sys.stderr)
    evaluator = periodic_evaluator(out, opts, ts.standardizer) if opts["eval_every"] and ctx.is_main else None
    if data is ts.data and isinstance(data, torch.Tensor):  # the modality's own data (not streamed, not reflow's)
        data = ts.standardizer.forward(data)
    result = train(model, path, data, tcfg, run_dir=out,
                   standardizer=ts.standardizer, resume=args.resume, progress=not args.no_progress,
                   evaluator=evaluator, tensorboard=bool(opts["tensorboard"]), labels=labels, noise=ts.noise,
                   batch_condition=ts.batch_condition, loss_weight=ts.loss_weight,
                   pairs=derived.pairs if derived is not None else None,
                   teacher=derived.teacher if derived is not None else None,
                   init=derived.init if derived is not None else None,
                   batches=ts.batches, coupling=ts.coupling, loss_fn=ts.loss,
                   predict=ts.predict)
    final = result.log[-1][1] if result.log else float("nan")
    if ctx.is_main and not result.log:
        print(f"nothing to train: {out} is at step {result.step}, the end of its --steps or --minutes; pass larger "
              "ones with --resume to continue", file=sys.stderr)
    elif ctx.is_main:
        skips = f", {result.skipped} non-finite steps skipped" if result.skipped else ""
        print(f"done: step {result.step}, final loss {final:.4f}, {result.steps_per_sec:.1f} steps/s, "
              f"{result.seconds / 60:.1f} min of training{skips}",
              file=sys.stderr)
    return 0


def plot_path_command(args: argparse.Namespace) -> int:
    from ..data import load_data
    from ..paths import make_path
    from ..plotting import plot_path_marginals

    data = load_data(args.data, n=args.n, key=args.key)
    plot_path_marginals(make_path(args.path), data[: args.n], args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
