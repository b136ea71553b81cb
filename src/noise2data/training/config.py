"""Training configuration: a frozen, validated dataclass written to config.json with every run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from ..couplings import get_coupling
from ..errors import UserError
from ..losses import TimeDistribution
from ..meanflow import MeanFlowConfig
from ..paths import check_prediction

OBJECTIVES = ("velocity", "noise", "data", "score", "meanflow")

LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        steps: optimiser steps in all (a resumed run continues up to this number).
        minutes: a wall-clock budget (0: none). Training stops once this many minutes of training
            time have passed (checkpoint writes and evaluations not counted; a resumed run counts the
            time it spent before), and the cosine follows the share of the budget spent instead of the
            step; ``steps`` is then only a cap. Such a run follows a clock, so it is not bit-exact
            across machines or resumes (a step-counted run is).
        batch_size: samples per step.
        lr, weight_decay: AdamW's peak learning rate and decoupled weight decay.
        lr_schedule: ``cosine`` (decay to 0 at ``steps``) or ``constant``; either after a linear
            warm-up of ``warmup_steps``. The rate is a pure function of the step, so a resumed run
            follows it exactly (extending ``steps`` on resume stretches the cosine).
        ema_decay: decay of the exponential moving average of the weights (0 disables it); the
            decay used at step k is min(ema_decay, (1 + k) / (10 + k)), a warm-up.
        grad_clip: clip the global gradient norm to this value (0 disables clipping).
        dequantize: for discrete data on a grid of this spacing (in data units, e.g. 1 for integer
            pixels), add uniform noise on [0, dequantize) to every batch, so the model learns a
            density whose dequantised likelihood (bits/dim) is meaningful; 0 = off.
        objective: what the model predicts: ``velocity`` (flow matching), ``noise``, ``data`` or
            ``score`` (denoising score matching), or ``meanflow`` (the average velocity over a jump
            [t, r], for one- and few-step sampling; the model must be built with ``mean_flow=True``).
        mean_flow: MeanFlow's settings (used with ``objective="meanflow"``).
        time_dist: the distribution of training times.
        coupling: how noise is paired with data in a batch: ``independent``, ``ot`` (minibatch
            optimal transport, within each class for labelled data and within k-means buckets of vector
            conditions; straighter paths, 2.6-3.5x the time of a step of
            the default MLP at batch 512 on CPU) or ``ot-blocks`` (the same in blocks of 64; 1.2-1.3x;
            ``ot-blocks:N`` in blocks of N).
        seed: seeds the model's initialisation and every random draw of training.
        checkpoint_every: steps between checkpoints (a final one is always written).
        keep: how many checkpoints to keep (the newest).
        log_every: steps between log lines (metrics.jsonl and the progress bar).
        eval_every: steps between periodic evaluations (0: none), when train() is given an evaluator.
        precision: ``fp32``, or autocast to ``bf16`` or ``fp16`` (with a gradient scaler) for the
            forward pass; weights, optimiser state and EMA stay float32.
        compile: run the network through ``torch.compile``.
        label_dropout: with labels, the probability that a sample's label is replaced by the null
            label, so one network learns both the conditional and the unconditional field
            (classifier-free guidance needs it > 0; 0.1 to 0.2 is usual).
        hflip: images ``(B, C, H, W)``: mirror each sample left-right with probability 1/2 (augmentation
            for data whose law is mirror-symmetric; not for digits or text).
        skip_nonfinite: on a non-finite loss or gradient, skip the step (counted in metrics.jsonl
            and the checkpoint) instead of stopping; more than ``MAX_SKIPS`` in a row still stops.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ...
    """

    steps: int = 5000
    minutes: float = 0.0
    batch_size: int = 512
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    dequantize: float = 0.0
    precision: str = "fp32"
    compile: bool = False
    skip_nonfinite: bool = False
    label_dropout: float = 0.0
    hflip: bool = False
    objective: str = "velocity"
    time_dist: TimeDistribution = field(default_factory=TimeDistribution)
    mean_flow: MeanFlowConfig = field(default_factory=MeanFlowConfig)
    coupling: str = "independent"
    seed: int = 0
    checkpoint_every: int = 1000
    keep: int = 3
    log_every: int = 100
    eval_every: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "keep", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise UserError(f"eval-every must be a non-negative integer (0 = off), got {self.eval_every!r}")
        if not (isinstance(self.minutes, (int, float)) and math.isfinite(self.minutes) and self.minutes >= 0):
            raise UserError(f"minutes must be a number >= 0 (0 = no time budget), got {self.minutes!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown lr schedule '{self.lr_schedule}': expected one of {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise UserError(f"warmup-steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.dequantize < 0:
            raise UserError("grad-clip, weight-decay and dequantize must be >= 0")
        if not 0.0 <= self.label_dropout < 1.0:
            raise UserError(f"label-dropout must be in [0, 1), got {self.label_dropout}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision '{self.precision}': expected one of {', '.join(PRECISIONS)}")
        if self.objective not in OBJECTIVES:
            check_prediction(self.objective)
        get_coupling(self.coupling)
        if isinstance(self.time_dist, dict):
            object.__setattr__(self, "time_dist", TimeDistribution(**self.time_dist))
        if isinstance(self.mean_flow, dict):
            object.__setattr__(self, "mean_flow", MeanFlowConfig(**self.mean_flow))

    @property
    def prediction(self) -> str:
        return prediction_of(self.objective)

    def to_dict(self) -> dict:
        return asdict(self)

    def lr_at(self, step: int, seconds: float = 0.0) -> float:
        """The learning rate for optimiser step ``step`` (1-based), after ``seconds`` of training time
        (which only a run with a time budget, ``minutes > 0``, looks at)."""
        warm = min(1.0, step / self.warmup_steps) if self.warmup_steps else 1.0
        if self.lr_schedule == "cosine":
            done = min(seconds / (60 * self.minutes), 1.0) if self.minutes else min(step, self.steps) / self.steps
            return self.lr * warm * 0.5 * (1 + math.cos(math.pi * done))
        return self.lr * warm

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"unknown training setting(s) {', '.join(sorted(unknown))}: this config was written by "
                            "another version of noise2data or edited by hand")
        return cls(**d)


def prediction_of(objective: str) -> str:
    """What a network trained with ``objective`` outputs (a jump model's u(x, t, t) is a velocity)."""
    return "velocity" if objective == "meanflow" else objective


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; other names are checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available here: use --device cpu")
    return dev
