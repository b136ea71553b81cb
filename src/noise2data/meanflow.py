"""MeanFlow: a model of the average velocity over an interval, for sampling in one or a few steps.

In noise2data's convention (t = 0 noise, t = 1 data) a jump goes from time ``t`` to a later time
``r >= t``. The average velocity of the flow over [t, r], started at ``x_t``, is

    u(x_t, t, r) = 1 / (r - t) * integral_t^r v(x_s, s) ds,   so   x_r = x_t + (r - t) u(x_t, t, r),

and u(x, t, t) = v(x, t). Differentiating ``(r - t) u = integral_t^r v ds`` in ``t`` along the
trajectory gives the MeanFlow identity (Geng et al. 2025, written for this direction of time):

    u(x_t, t, r) = v(x_t, t) + (r - t) * d/dt u(x_t, t, r),   d/dt u = (grad_x u) v + d_t u,

whose right side is the regression target, with the total derivative a Jacobian-vector product of
the network along ``(v, 1)`` and no gradient through it. ``v`` is the conditional velocity of the
path (an unbiased estimate of the marginal one, and the target is linear in it), or a trained flow
model's velocity when distilling (lower variance). A jump model is any noise2data model built with
``mean_flow=True``: ``forward(x, t, cond, r)``.

Classifier-free guidance is baked into the target at training time (``guidance = w``): for a
sample with a condition, ``v`` becomes ``w v + (1 - w) u(x_t, t, t | null)`` (the model's own
unconditional velocity, or the teacher's), so the trained model jumps along the *guided* flow and a
guided sample still costs one evaluation. Guiding at sampling time instead would double the cost
and mix average velocities of different trajectories, which is not the guided flow's average.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .broadcast import append_dims
from .errors import UserError
from .losses import TimeDistribution, per_sample_mse
from .models.conditioning import condition_kind, null_condition
from .paths import GaussianPath, PathSample

JVP_MODES = ("forward", "backward", "fd")
FD_STEP = 1e-3  # finite-difference step in time (and along v), for models without forward-mode AD


@dataclass(frozen=True)
class MeanFlowConfig:
    """How MeanFlow trains.

    Attributes:
        ratio: the share of samples with r > t (the others have r = t: plain flow matching); 0.25 is
            the paper's best for one-step quality.
        power: adaptive loss weight ``1 / (mse + eps)^power`` (no gradient through the weight);
            0 is plain MSE, 1 the paper's choice (a robust, roughly L1-like loss).
        eps: the constant of the adaptive weight.
        jvp: how d/dt u is computed: ``forward`` (``torch.func.jvp``, exact, about 2 forward passes),
            ``backward`` (exact, through double backward, for models lacking forward-mode AD),
            ``fd`` (central finite differences, cheapest code path and least accurate).
        guidance: classifier-free guidance scale baked into the target (1 = none; labelled runs only).
    """

    ratio: float = 0.25
    power: float = 1.0
    eps: float = 1e-3
    jvp: str = "forward"
    guidance: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise UserError(f"the share of r != t (--mf-ratio) must be in [0, 1], got {self.ratio}")
        if self.power < 0 or not self.eps > 0:
            raise UserError(f"the adaptive weight needs power >= 0 and eps > 0, got {self.power} and {self.eps}")
        if self.jvp not in JVP_MODES:
            raise UserError(f"unknown --mf-jvp '{self.jvp}': expected one of {', '.join(JVP_MODES)}")
        if not self.guidance >= 0:
            raise UserError(f"--mf-guidance must be >= 0 (1 = none), got {self.guidance}")

    def to_dict(self) -> dict:
        return asdict(self)


def draw_interval(time_dist: TimeDistribution, config: MeanFlowConfig, n: int, generator: torch.Generator,
                  device: torch.device | str, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(t, r)``, each ``(n,)``, ``t <= r``: two draws of ``time_dist`` sorted for a share ``ratio`` of rows;
    ``r = t`` (one draw) for the others."""
    a = time_dist.sample(n, generator=generator, device=device, dtype=dtype)
    b = time_dist.sample(n, generator=generator, device=device, dtype=dtype)
    jump = torch.rand(n, generator=generator, device=device) < config.ratio  # (n,)
    t = torch.where(jump, torch.minimum(a, b), a)
    return t, torch.where(jump, torch.maximum(a, b), a)


def total_derivative(u_fn, x: Tensor, t: Tensor, v: Tensor, mode: str = "forward") -> Tensor:  # noqa: ANN001
    """``d/dt u(x_t, t) = (grad_x u) v + d_t u``: the derivative of ``u_fn(x, t)`` along ``(v, 1)``, ``(B, *D)``.

    No gradient flows back through the result (it is part of a regression target).
    """
    ones = torch.ones_like(t)
    if mode == "forward":
        with torch.no_grad():
            return torch.func.jvp(u_fn, (x, t), (v, ones))[1].detach()
    if mode == "backward":  # J v through two reverse passes: grad of <J^T g, v> with respect to g
        with torch.enable_grad():
            xg, tg = x.detach().requires_grad_(True), t.detach().requires_grad_(True)
            out = u_fn(xg, tg)
            g = torch.zeros_like(out, requires_grad=True)
            gx, gt = torch.autograd.grad(out, (xg, tg), g, create_graph=True)
            (jv,) = torch.autograd.grad((gx, gt), g, (v, ones))
        return jv.detach()
    if mode == "fd":
        with torch.no_grad():
            h = FD_STEP
            return (u_fn(x + h * v, t + h) - u_fn(x - h * v, t - h)) / (2 * h)
    raise UserError(f"unknown jvp mode '{mode}': expected one of {', '.join(JVP_MODES)}")


def meanflow_target(u_fn, x: Tensor, t: Tensor, r: Tensor, v: Tensor, mode: str = "forward") -> Tensor:  # noqa: ANN001
    """MeanFlow's regression target ``v + (r - t) d/dt u(x_t, t, r)``, ``(B, *D)``, with no gradient.

    ``u_fn(x, t)`` is the jump model at the fixed ends ``r: (B,)``; ``v: (B, *D)`` the velocity at
    ``(x, t)`` along which the state moves. If ``u_fn`` is the true average velocity and ``v`` the
    true (marginal) velocity, the target equals ``u_fn(x, t)`` (tests/test_meanflow.py checks it).
    """
    return (v + append_dims(r - t, v.ndim) * total_derivative(u_fn, x, t, v, mode)).detach()


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module inside DDP and ``torch.compile`` wrappers (for a target that needs no gradient)."""
    net = getattr(net, "module", net)
    return getattr(net, "_orig_mod", net)


def guided_velocity(v: Tensor, x: Tensor, t: Tensor, cond: Tensor | None, scale: float,
                    unconditional: nn.Module) -> Tensor:
    """``scale * v + (1 - scale) * u(x, t, t | null)`` on rows with a condition; ``v`` elsewhere; ``(B, *D)``."""
    if scale == 1.0 or cond is None:
        return v
    num_classes, cond_dim = condition_kind(unconditional)
    if not num_classes and not cond_dim:
        raise UserError("--mf-guidance needs a model trained with labels or vector conditions")
    null = null_condition(cond, num_classes)
    has = cond != num_classes if num_classes else ~torch.isnan(cond).all(1)  # (B,)
    with torch.no_grad():
        v_null = unconditional(x, t, null)
    guided = scale * v + (1 - scale) * v_null
    return torch.where(append_dims(has, v.ndim), guided, v)


def meanflow_loss(net: nn.Module, sample: PathSample, r: Tensor, path: GaussianPath, config: MeanFlowConfig, *,
                  cond: Tensor | None = None, weight: Tensor | None = None, teacher: nn.Module | None = None
                  ) -> Tensor:
    """The MeanFlow loss of one batch, ``(B,)``.

    Args:
        net: the jump model being trained, ``net(x, t, cond, r)`` (may be wrapped in DDP).
        sample: the path sample (``x_t`` at ``sample.t``).
        r: ``(B,)`` the ends of the jumps, ``r >= sample.t``.
        path: the probability path (its conditional velocity is ``v`` without a teacher).
        config: the MeanFlow settings.
        cond: the batch's condition, or None.
        weight: optional weights of the entries (e.g. 0 on frames given as context).
        teacher: a trained flow model ``teacher(x, t, cond)`` whose velocity replaces the conditional one.
    """
    x, t = sample.x_t, sample.t
    model = unwrap(net)
    if teacher is not None:
        with torch.no_grad():
            v = teacher(x, t, cond)
        v = guided_velocity(v, x, t, cond, config.guidance, teacher)
    else:
        v = path.target(sample, "velocity")
        if config.guidance != 1.0:
            v = guided_velocity(v, x, t, cond, config.guidance, _Instantaneous(model))
    target = v.clone()
    jump = r > t  # (B,): only these rows need the derivative ((r - t) = 0 elsewhere)
    if bool(jump.any()):
        idx = jump.nonzero().squeeze(1)
        c = cond[idx] if cond is not None else None
        r_j = r[idx]
        target[idx] = meanflow_target(lambda xx, tt: model(xx, tt, c, r_j), x[idx], t[idx], r_j, v[idx], config.jvp)
    u = net(x, t, cond, r)
    mse = per_sample_mse(u - target.detach(), weight)  # (B,)
    if config.power == 0:
        return mse
    return mse / (mse.detach() + config.eps).pow(config.power)


class _Instantaneous(nn.Module):
    """``u(x, t, t | cond)``: a jump model's instantaneous velocity, called like a flow model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = getattr(model, "config", None)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.model(x, t, cond, t)
