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
from ..couplings import get_coupling
from ..data import Standardizer
from ..errors import UserError
from ..losses import prediction_loss
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
from .ema import ema_update_, make_ema
from .logger import LOG_FILE, MetricsLogger, trim_log


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        step: the last completed step.
        log: ``(step, mean loss since the previous entry)`` pairs.
        steps_per_sec: optimiser steps per second over this call (excluding checkpoint writes).
        model, ema: the trained network and its average (the one to sample from).
    """

    step: int
    log: list[tuple[int, float]] = field(default_factory=list)
    steps_per_sec: float = 0.0
    model: nn.Module | None = None
    ema: nn.Module | None = None


def training_step_loss(
    model: nn.Module, path: GaussianPath, x1: Tensor, config: TrainConfig, generator: torch.Generator,
    cond: Tensor | None = None,
) -> Tensor:
    """Per-sample loss ``(B,)`` of one batch ``x1: (B, *D)``: draw t and noise, couple, regress."""
    t = config.time_dist.sample(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    sample = path.sample(x1, t, get_coupling(config.coupling)(x0, x1))
    return prediction_loss(model(sample.x_t, t, cond), sample, path, config.objective)


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
) -> TrainResult:
    """Train ``model`` on ``data: (N, *D)`` (already in the units the model sees).

    Randomness comes from one generator seeded with ``config.seed``: batch indices (drawn with
    replacement), times and noise. With ``run_dir`` set, checkpoints (model, EMA, optimizer, RNG,
    data statistics) are written every ``config.checkpoint_every`` steps and at the end, and
    ``metrics.jsonl`` logs the loss; ``resume=True`` continues bit-exactly from the newest intact
    checkpoint there. Every ``config.eval_every`` steps, ``evaluator(ema, step)`` (which must not
    touch the training RNG) returns scores that are logged beside the loss (and to TensorBoard).
    """
    device = resolve_device(config.device)
    model.to(device)
    data = data.to(device)
    ema = make_ema(model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator(device).manual_seed(config.seed)
    start = 0
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)

    if resume:
        ckpt = latest_checkpoint(run_dir) if run_dir is not None else None
        if ckpt is None:
            raise UserError(f"nothing to resume: no intact checkpoint in {run_dir}/checkpoints")
        groups, meta = load_checkpoint(ckpt, ("model", "ema", "optimizer", "rng"))
        model.load_state_dict(groups["model"])
        ema.load_state_dict(groups["ema"])
        opt.load_state_dict(unflatten_optimizer(groups["optimizer"], meta["optimizer"]))
        set_rng_state(gen, groups["rng"])
        start = int(meta["step"])
        trim_log(run_dir / LOG_FILE, start)

    def checkpoint(step: int) -> None:
        if run_dir is None:
            return
        opt_tensors, opt_rest = flatten_optimizer(opt.state_dict())
        groups = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt_tensors,
                  "rng": rng_state(gen)}
        if standardizer is not None:
            groups["stats"] = standardizer.state_dict()
        save_checkpoint(run_dir, step, groups, {"version": __version__, "optimizer": opt_rest},
                        keep=config.keep)

    model.train()
    result = TrainResult(step=start, model=model, ema=ema)
    logger = MetricsLogger(run_dir, tensorboard=tensorboard)
    bar = _progress(config.steps, start, progress)
    loss_sum = torch.zeros((), device=device)
    deq = None  # dequantisation noise width in the model's units, per coordinate
    if config.dequantize > 0:
        std = standardizer.std if standardizer is not None else torch.ones(data.shape[1:])
        deq = (config.dequantize / std).to(device=device, dtype=data.dtype)
    n_since, t_since, train_time = 0, time.perf_counter(), 0.0
    try:
        for step in range(start + 1, config.steps + 1):
            idx = torch.randint(0, data.shape[0], (config.batch_size,), generator=gen, device=device)
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step)
            x1 = data[idx]
            if deq is not None:
                x1 = x1 + deq * torch.rand(x1.shape, generator=gen, device=device, dtype=x1.dtype)
            loss = training_step_loss(model, path, x1, config, gen).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            # warm-up: early on the average would be dominated by the initial weights
            ema_update_(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
            loss_sum += loss.detach()
            n_since += 1
            at_log = step % config.log_every == 0 or step == config.steps
            at_ckpt = step % config.checkpoint_every == 0 or step == config.steps
            if at_log or at_ckpt:
                mean_loss = loss_sum.item() / n_since
                if not math.isfinite(mean_loss):
                    raise UserError(
                        f"training diverged: the loss is {mean_loss} by step {step}; no checkpoint was "
                        f"written after it. Lower --lr (now {config.lr}), keep --grad-clip on, or check "
                        "the data"
                    )
                elapsed = time.perf_counter() - t_since
                train_time += elapsed
                result.log.append((step, mean_loss))
                logger.loss(step, mean_loss, n_since / elapsed)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                elif progress:
                    print(f"step {step}/{config.steps} loss {mean_loss:.4f} "
                          f"({n_since / elapsed:.1f} steps/s)", file=sys.stderr)
                loss_sum.zero_()
                result.steps_per_sec = (step - start) / train_time
                n_since = 0
                if at_ckpt:
                    checkpoint(step)
                t_since = time.perf_counter()
            if evaluator is not None and config.eval_every and step % config.eval_every == 0:
                with torch.no_grad():
                    logger.evaluation(step, evaluator(ema, step))
                t_since = time.perf_counter()  # evaluation time is not training time
            if bar is not None:
                bar.update(1)
            result.step = step
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    model.eval()
    return result
