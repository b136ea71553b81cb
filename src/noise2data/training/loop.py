"""The training loop: AdamW, EMA, gradient clipping, logging, checkpoints and exact resume."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import __version__
from ..couplings import condition_groups, get_coupling
from ..data import Standardizer
from ..errors import UserError
from ..losses import prediction_loss
from ..meanflow import draw_interval, meanflow_loss
from ..modalities.base import BatchConditionFn, BatchIndexFn, CouplingFn, LossFn, LossWeightFn, NoiseFn, PredictFn
from ..models.conditioning import check_condition, condition_kind, drop_condition
from ..paths import GaussianPath
from .checkpoint import (
    flatten_optimizer,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unflatten_optimizer,
)
from .config import TrainConfig, resolve_device
from .distributed import current_context
from .ema import ema_update_, make_ema
from .engine import MAX_SKIPS, check_compatible, load_initial_weights, precision_context, wrap_network
from .logger import LOG_FILE, MetricsLogger, trim_log
from .memory import check_step_fits


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        step: the last completed step.
        log: ``(step, mean loss since the previous entry)`` pairs.
        steps_per_sec: optimiser steps per second over this call (excluding checkpoint writes).
        seconds: training time in all, earlier calls' included (checkpoint writes and evaluations not).
        model, ema: the trained network and its average (the one to sample from).
        skipped: steps skipped for a non-finite loss or gradient (``skip_nonfinite``), in all.
    """

    step: int
    log: list[tuple[int, float]] = field(default_factory=list)
    steps_per_sec: float = 0.0
    seconds: float = 0.0
    model: nn.Module | None = None
    ema: nn.Module | None = None
    skipped: int = 0


def training_step_loss(
    model: nn.Module, path: GaussianPath, x1: Tensor, config: TrainConfig, generator: torch.Generator,
    cond: Tensor | None = None, part: tuple[int, int] | None = None, noise: NoiseFn | None = None,
    loss_weight: LossWeightFn | None = None, x0: Tensor | None = None, teacher: nn.Module | None = None,
    groups: Tensor | None = None, coupling: CouplingFn | None = None, loss_fn: LossFn | None = None,
    predict: PredictFn | None = None,
) -> Tensor:
    """Per-sample loss of one batch ``x1: (B, *D)``: draw t and noise, couple, regress.

    The random numbers and the coupling are drawn for the whole batch; with ``part = (start,
    stop)`` the network sees only those rows (one process's share of a global batch), and the
    loss is ``(stop - start,)``; otherwise ``(B,)``. ``noise(x1, cond, generator)`` draws x0 when
    p_init is not N(0, I) on the whole tensor (a modality's own prior, see ``modalities.base.TrainingSet``);
    ``loss_weight(cond)`` weights the entries of the loss (e.g. 0 on frames given as context).
    ``x0`` given (reflow: noise already paired with its sample) is used as is, with no coupling.
    ``groups: (B,)`` integers confine the coupling within groups (default: the batch's class labels).
    ``coupling(x0, x1, cond)`` replaces ``config.coupling`` (a modality's own pairing) and ``loss_fn`` replaces
    :func:`~noise2data.losses.prediction_loss` (same signature); ``predict(model, x_t, t, cond, generator)``
    replaces the call ``model(x_t, t, cond)`` (e.g. self-conditioning).
    With ``objective="meanflow"`` the model learns jumps [t, r] (:func:`noise2data.meanflow.meanflow_loss`),
    with ``teacher``'s velocity in the target when one is given (distillation).
    """
    n, dev, dt = x1.shape[0], x1.device, x1.dtype
    r = None
    if config.objective == "meanflow":
        t, r = draw_interval(config.time_dist, config.mean_flow, n, generator, dev, dt)
    else:
        t = config.time_dist.sample(n, generator=generator, device=dev, dtype=dt)
    if x0 is None:
        if noise is None:
            x0 = torch.randn(x1.shape, generator=generator, device=dev, dtype=dt)
        else:
            x0 = noise(x1, cond, generator)
        if coupling is not None:
            x0 = coupling(x0, x1, cond)
        else:
            if groups is None and cond is not None and cond.ndim == 1 and not cond.is_floating_point():
                groups = cond
            x0 = get_coupling(config.coupling)(x0, x1, groups)  # OT pairs within a class
    sample = path.sample(x1, t, x0)
    if part is not None:
        sample = sample.rows(*part)
        cond = cond[part[0]:part[1]] if cond is not None else None
        r = r[part[0]:part[1]] if r is not None else None
    weight = loss_weight(cond) if loss_weight is not None else None  # e.g. only the frames not given
    if r is not None:
        return meanflow_loss(model, sample, r, path, config.mean_flow, cond=cond, weight=weight, teacher=teacher)
    if predict is None:
        pred = model(sample.x_t, sample.t, cond)
    else:
        pred = predict(model, sample.x_t, sample.t, cond, generator)
    return (loss_fn or prediction_loss)(pred, sample, path, config.objective, weight)


def check_labels(model: nn.Module, labels: Tensor, data: Tensor) -> int:
    """Validate the conditions of ``data: (N, *D)`` (labels ``(N,)`` or vectors ``(N, k)``) for ``model``.

    Returns the model's number of classes (0 for vector conditions).
    """
    own_check = getattr(model, "check_training_condition", None)
    if own_check is not None:  # a model whose condition is not a label or a vector (e.g. an atom mask)
        own_check(labels, data)
        return 0
    num_classes, cond_dim = condition_kind(model)
    check_condition(labels, len(data), num_classes, cond_dim, allow_null=False, what="training condition")
    return num_classes


def random_hflip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image of ``x: (B, C, H, W)`` left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5  # (B,)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr)


def train(
    model: nn.Module,
    path: GaussianPath,
    data: Tensor,
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    standardizer: Standardizer | None = None,
    resume: bool = False,
    progress: bool = True,
    evaluator: Callable[[nn.Module, int], dict[str, float]] | None = None,
    tensorboard: bool = False,
    labels: Tensor | None = None,
    noise: NoiseFn | None = None,
    batch_condition: BatchConditionFn | None = None,
    loss_weight: LossWeightFn | None = None,
    pairs: Tensor | None = None,
    teacher: nn.Module | None = None,
    init: dict[str, Tensor] | None = None,
    batches: BatchIndexFn | None = None,
    coupling: CouplingFn | None = None,
    loss_fn: LossFn | None = None,
    predict: PredictFn | None = None,
) -> TrainResult:
    """Train ``model`` on ``data: (N, *D)`` (already in the units the model sees).

    Randomness comes from one generator seeded with ``config.seed``: batch indices (drawn with
    replacement), times and noise. With ``run_dir`` set, checkpoints (model, EMA, optimizer, RNG,
    data statistics) are written every ``config.checkpoint_every`` steps and at the end, and
    ``metrics.jsonl`` logs the loss; ``resume=True`` continues bit-exactly from the newest intact
    checkpoint there. ``labels: (N,)`` integer classes make the model class-conditional, and
    ``labels: (N, k)`` floats condition it on vectors (with ``config.label_dropout`` for
    classifier-free guidance in both cases). ``noise`` replaces N(0, I) as p_init (see
    :func:`training_step_loss`). ``batch_condition(x1, cond, generator)`` draws a batch's condition from
    its data (e.g. which video frames are given), from the training stream so that resume stays exact;
    ``loss_weight`` then weights the loss (see :func:`training_step_loss`). Every ``config.eval_every`` steps,
    ``evaluator(ema, step)`` (which must not touch the training RNG) returns scores that are
    logged beside the loss (and to TensorBoard). ``pairs: (N, *D)`` is the noise each data point
    was generated from (reflow): batch rows take their own noise and no coupling is applied.
    ``teacher`` (a trained flow model, frozen) gives the velocity in MeanFlow's target (distillation);
    ``init`` (a state dict, possibly lacking the jump embedding) initialises a fresh run's weights.
    ``batches(batch_size, generator, device)`` draws each batch's indices (default: uniform with
    replacement); ``coupling``, ``loss_fn`` and ``predict`` are a modality's own (see :func:`training_step_loss`).
    """
    device = resolve_device(config.device)
    null_label = check_labels(model, labels, data) if labels is not None else None
    if config.hflip and data.ndim != 4:
        raise UserError(f"hflip mirrors images (N, C, H, W); this data has shape {tuple(data.shape)}")
    ctx = current_context()
    part = ctx.part(config.batch_size) if ctx.active else None
    if pairs is not None and tuple(pairs.shape) != tuple(data.shape):
        raise UserError(f"reflow pairs must match the data, {tuple(data.shape)}; got {tuple(pairs.shape)}")
    if init is not None and not resume:
        load_initial_weights(model, init)
    model.to(device)
    data = data.to(device)
    pairs = pairs.to(device) if pairs is not None else None
    buckets = None  # the coupling's groups: class labels, or buckets of vector conditions (before dropout)
    if labels is not None and batch_condition is None and config.coupling != "independent" and \
            getattr(model, "check_training_condition", None) is None:
        buckets = condition_groups(labels)
    if teacher is not None:
        teacher = teacher.to(device).eval().requires_grad_(False)
    labels = labels.to(device) if labels is not None else None
    ema = make_ema(model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator(device).manual_seed(config.seed)  # the same stream on every rank
    start, skipped, spent_before = 0, 0, 0.0
    run_dir = Path(run_dir) if run_dir is not None else None
    writer_dir = run_dir if ctx.is_main else None  # only rank 0 writes files
    if writer_dir is not None:
        writer_dir.mkdir(parents=True, exist_ok=True)

    autocast, scaler = precision_context(config.precision, device)
    if resume:
        ckpt = latest_checkpoint(run_dir) if run_dir is not None else None
        if ckpt is None:
            raise UserError(f"nothing to resume: no intact checkpoint in {run_dir}/checkpoints")
        groups, meta = load_checkpoint(ckpt, ("model", "ema", "optimizer", "rng"))
        check_compatible(model, groups["model"], ckpt)
        model.load_state_dict(groups["model"])
        ema.load_state_dict(groups["ema"])
        opt.load_state_dict(unflatten_optimizer(groups["optimizer"], meta["optimizer"]))
        set_rng_state(gen, groups["rng"])
        start, skipped = int(meta["step"]), int(meta.get("skipped", 0))
        spent_before = float(meta.get("train_seconds", 0.0))
        if scaler is not None and meta.get("grad_scaler"):
            scaler.load_state_dict(meta["grad_scaler"])  # fp16: the loss scale it had reached
        if writer_dir is not None:
            trim_log(writer_dir / LOG_FILE, start)
    ctx.barrier()  # nobody starts before rank 0 has trimmed the log and every rank has loaded

    def checkpoint(step: int, seconds: float) -> None:
        if writer_dir is None:
            return
        opt_tensors, opt_rest = flatten_optimizer(opt.state_dict())
        groups = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt_tensors,
                  "rng": rng_state(gen)}
        if standardizer is not None:
            groups["stats"] = standardizer.state_dict()
        meta = {"version": __version__, "optimizer": opt_rest, "skipped": skipped, "train": config.to_dict(),
                "train_seconds": seconds}
        if scaler is not None:
            meta["grad_scaler"] = scaler.state_dict()
        if hasattr(model, "config") and hasattr(model.config, "to_dict"):
            meta["model"] = model.config.to_dict()  # so a checkpoint can be matched to its model alone
        save_checkpoint(writer_dir, step, groups, meta, keep=config.keep)

    net = wrap_network(model, config, ctx, device)
    model.train()

    def probe_step(b: int) -> None:  # one forward and backward at batch b, off the training stream; eager
        g, idx = torch.Generator(device).manual_seed(0), torch.arange(b, device=device) % data.shape[0]
        x1, cond = data[idx], labels[idx] if labels is not None else None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), autocast():
            cond = batch_condition(x1, cond, g) if batch_condition is not None else cond
            training_step_loss(model, path, x1, config, g, cond=cond, noise=noise, loss_weight=loss_weight,
                               x0=pairs[idx] if pairs is not None else None, teacher=teacher, coupling=coupling,
                               groups=buckets[idx] if buckets is not None else None, loss_fn=loss_fn,
                               predict=predict).float().mean().backward()
        opt.zero_grad(set_to_none=True)

    # under torchrun the ranks would have to probe in step; a compiled network is probed eagerly (no
    # recompilation for the probe's batch sizes), which overestimates its need a little
    if not ctx.active:
        check_step_fits(probe_step, config.batch_size, device, f"the {type(model).__name__}")
    result = TrainResult(step=start, model=model, ema=ema)
    logger = MetricsLogger(writer_dir, tensorboard=tensorboard)
    budget = 60.0 * config.minutes  # seconds of training time; 0: steps alone end the run
    bar = _progress(None if budget else config.steps, start, progress and ctx.is_main)
    loss_sum = torch.zeros((), device=device)
    deq = None  # dequantisation noise width in the model's units, per coordinate
    if config.dequantize > 0:
        std = standardizer.std if standardizer is not None else torch.ones(data.shape[1:])
        deq = (config.dequantize / std).to(device=device, dtype=data.dtype)
    n_since, t_since, train_time, in_a_row = 0, time.perf_counter(), 0.0, 0
    loop_start, paused = time.perf_counter(), 0.0  # paused: checkpoint writes and evaluations

    def spent(agree: bool = True) -> float:
        """Training seconds so far, this call's and earlier ones'; under torchrun with ``agree`` (a collective
        call: every rank must make it) the ranks' mean, so that all take the same learning rate and stop at the
        same step."""
        seconds = spent_before + time.perf_counter() - loop_start - paused
        if budget and agree and ctx.active:
            seconds = float(ctx.mean(torch.tensor(seconds, dtype=torch.float64, device=device)))
        return seconds

    try:
        # one clock reading per step (under torchrun one all-reduce): the end of a step's reading serves the next
        seconds = spent() if budget else 0.0
        for step in range(start + 1, config.steps + 1):
            if budget and seconds >= budget:  # a resumed run whose budget was already spent
                break
            if batches is not None:
                idx = batches(config.batch_size, gen, device)
            else:
                idx = torch.randint(0, data.shape[0], (config.batch_size,), generator=gen, device=device)
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step, seconds)
            x1 = data[idx]
            if config.hflip:  # drawn from the training stream, so resume stays exact
                x1 = random_hflip(x1, gen)
            if deq is not None:
                x1 = x1 + deq * torch.rand(x1.shape, generator=gen, device=device, dtype=x1.dtype)
            cond = labels[idx] if labels is not None and batch_condition is not None else None
            if batch_condition is not None:  # a condition drawn from the batch itself
                cond = batch_condition(x1, cond, gen)
            elif labels is not None:
                cond = labels[idx]
                if config.label_dropout > 0:  # the null condition, so the same network learns u(x | null)
                    cond = drop_condition(cond, config.label_dropout, null_label, gen)
            with autocast():
                loss = training_step_loss(net, path, x1, config, gen, cond=cond, part=part, noise=noise,
                                          loss_weight=loss_weight, x0=pairs[idx] if pairs is not None else None,
                                          teacher=teacher, groups=buckets[idx] if buckets is not None else None,
                                          coupling=coupling, loss_fn=loss_fn, predict=predict).float().mean()
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            # gradients are already averaged over ranks, so every rank sees the same norm and decides alike
            norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
            finite = bool(torch.isfinite(norm)) and bool(torch.isfinite(loss))
            if scaler is not None:  # fp16: an overflow is the scaler's to handle (it skips and rescales)
                scaler.step(opt)
                scaler.update()
            elif finite:
                opt.step()
            if not finite and scaler is None:
                skipped, in_a_row = skipped + 1, in_a_row + 1
                if not config.skip_nonfinite or in_a_row > MAX_SKIPS:
                    why = f"{in_a_row} steps in a row" if config.skip_nonfinite else "skipping is off"
                    raise UserError(
                        f"training diverged: non-finite loss or gradient at step {step} ({why}); no checkpoint was "
                        f"written after it. Lower --lr (now {config.lr}), keep --grad-clip on, check the data, "
                        "or pass --skip-nonfinite to skip such steps"
                    )
                opt.zero_grad(set_to_none=True)
            else:
                in_a_row = 0
                # warm-up: early on the average would be dominated by the initial weights
                ema_update_(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
                loss_sum += loss.detach()
                n_since += 1
            seconds = spent() if budget else 0.0
            out_of_time = bool(budget) and seconds >= budget
            last = step == config.steps or out_of_time
            at_log = step % config.log_every == 0 or last
            at_ckpt = step % config.checkpoint_every == 0 or last
            if at_log or at_ckpt:
                mean_loss = ctx.mean(loss_sum).item() / max(n_since, 1)
                elapsed = time.perf_counter() - t_since
                train_time += elapsed
                result.log.append((step, mean_loss))
                logger.loss(step, mean_loss, n_since / elapsed, skipped)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                elif progress and ctx.is_main:
                    where = (f"{spent(agree=False) / 60:.1f} of {config.minutes:g} min" if budget
                             else f"of {config.steps}")
                    print(f"step {step} {where} loss {mean_loss:.4f} ({n_since / elapsed:.1f} steps/s)",
                          file=sys.stderr)
                loss_sum.zero_()
                result.steps_per_sec = (step - start) / train_time
                n_since = 0
                if at_ckpt:
                    pause = time.perf_counter()
                    checkpoint(step, spent_before + pause - loop_start - paused)
                    paused += time.perf_counter() - pause
                t_since = time.perf_counter()
            if evaluator is not None and ctx.is_main and config.eval_every and step % config.eval_every == 0:
                pause = time.perf_counter()
                with torch.no_grad():
                    logger.evaluation(step, evaluator(ema, step))
                t_since = time.perf_counter()  # evaluation time is not training time
                paused += t_since - pause
            if bar is not None:
                bar.update(1)
            result.step = step
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    result.skipped = skipped
    result.seconds = spent_before + time.perf_counter() - loop_start - paused
    model.eval()
    return result
