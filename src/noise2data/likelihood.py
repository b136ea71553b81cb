"""Exact log-likelihood of a flow model through the probability-flow ODE.

For dx/dt = v(x, t) carrying p_0 (noise) to p_1 (data), the instantaneous change of variables
gives d/dt log p_t(x_t) = -div v(x_t, t). Integrating the state and its log-density change
together, *backwards* from a data point at t_hi to noise at t_lo,

    log p_1(x) = log p_0(x_{t_lo}) + int_{t_lo}^{t_hi} -div v(x_t, t) dt,

with any ODE solver of :mod:`noise2data.samplers`. The divergence is exact (one backward pass
per dimension: right for small D) or Hutchinson's estimate E[eps^T (dv/dx) eps] with a probe
``eps`` drawn once per point and held for the whole path, which keeps the integrand a smooth
function of t (FFJORD's choice): unbiased for the log-density, at one backward pass per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import UserError
from .fields import CountingField, Field
from .paths import GaussianPath
from .samplers import ODE_SOLVERS, uniform_grid
from .samplers.multistep import MULTISTEP_ORDERS

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


@dataclass(frozen=True)
class LikelihoodOutput:
    """Per-point results, all ``(B,)`` in nats (``z: (B, *D)`` is where each point lands in noise)."""

    log_prob: Tensor
    prior_log_prob: Tensor
    delta_log_prob: Tensor
    z: Tensor
    nfe: int

    @classmethod
    def concat(cls, outs: list[LikelihoodOutput], shift: float = 0.0) -> LikelihoodOutput:
        """The outputs of consecutive batches as one, on the CPU; ``shift`` is added to ``log_prob`` (a change of
        units)."""
        return cls(log_prob=torch.cat([o.log_prob for o in outs]).cpu() + shift,
                   prior_log_prob=torch.cat([o.prior_log_prob for o in outs]).cpu(),
                   delta_log_prob=torch.cat([o.delta_log_prob for o in outs]).cpu(),
                   z=torch.cat([o.z for o in outs]).cpu(), nfe=outs[0].nfe)


def gaussian_log_prob(std: float) -> Callable[[Tensor], Tensor]:
    """log N(z; 0, std^2 I) summed over all but the batch dimension, ``(B, *D) -> (B,)``."""

    def log_prob(z: Tensor) -> Tensor:
        d = z[0].numel()
        return -0.5 * z.flatten(1).pow(2).sum(1) / std**2 - d * (math.log(std) + 0.5 * math.log(2 * math.pi))

    return log_prob


def divergence_exact(field: Field, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(v, div v)`` with the trace of the Jacobian summed from D backward passes; ``(B, *D), (B,)``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = field(x, t)
        flat = v.flatten(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(flat.shape[1]):
            (g,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
            div = div + g.flatten(1)[:, i]
    return v.detach(), div.detach()


def divergence_hutchinson(field: Field, x: Tensor, t: Tensor, probe: Tensor) -> tuple[Tensor, Tensor]:
    """``(v, eps^T (dv/dx) eps)`` for a probe ``eps: (B, *D)`` with E[eps eps^T] = I; one backward pass."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = field(x, t)
        (g,) = torch.autograd.grad((v * probe).sum(), x)
    return v.detach(), (g * probe).flatten(1).sum(1).detach()


def draw_probe(like: Tensor, kind: str, generator: torch.Generator | None) -> Tensor:
    """A Rademacher (+-1) or standard Gaussian probe shaped like ``like``."""
    if kind == "gaussian":
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    if kind == "rademacher":
        bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
        return bits.to(like.dtype) * 2 - 1
    raise UserError(f"unknown probe '{kind}': expected one of {', '.join(PROBES)}")


def log_likelihood(
    field: Field,
    x: Tensor,
    path: GaussianPath,
    *,
    solver: str = "rk4",
    steps: int = 64,
    t_lo: float = 0.0,
    t_hi: float = 1.0,
    divergence: str = "exact",
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    prior_log_prob: Callable[[Tensor], Tensor] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> LikelihoodOutput:
    """log p(x) of points ``x: (B, *D)`` under the flow of the velocity ``field``.

    Args:
        field: the marginal velocity field v(x, t) (e.g. :func:`noise2data.model_field`).
        x: data points, the state at ``t_hi``.
        path: the path the field belongs to; its prior N(0, sigma_{t_lo}^2 I) is log p at ``t_lo``
            unless ``prior_log_prob`` is given.
        solver: a name in ``ODE_SOLVERS`` (``dopri5`` uses ``rtol``/``atol`` and ignores ``steps``).
        steps: steps of a uniform grid from ``t_hi`` down to ``t_lo``.
        divergence: ``exact`` or ``hutchinson`` (with ``probe`` drawn from ``generator``).
    """
    usable = [s for s in ODE_SOLVERS if s not in MULTISTEP_ORDERS]
    if solver not in ODE_SOLVERS:
        raise UserError(f"unknown solver '{solver}': expected one of {', '.join(usable)}")
    if solver in MULTISTEP_ORDERS:
        raise UserError(f"solver '{solver}' cannot integrate the likelihood (the multistep solvers only sample, from "
                        f"noise to data): use one of {', '.join(usable)}")
    if divergence not in DIVERGENCES:
        raise UserError(f"unknown divergence '{divergence}': expected one of {', '.join(DIVERGENCES)}")
    if x.ndim < 2:
        raise UserError(f"x must be batched, (B, *D); got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise UserError("the points have NaN or Inf values: their likelihood is undefined")
    if not 0.0 <= t_lo < t_hi <= 1.0:
        raise UserError(f"need 0 <= t_lo < t_hi <= 1, got t_lo={t_lo}, t_hi={t_hi}")
    with torch.inference_mode(False):
        x = x.clone()  # a normal tensor even if made under inference mode, so autograd can use it
        shape, b = x.shape, x.shape[0]
        eps = draw_probe(x, probe, generator) if divergence == "hutchinson" else None
        counted = CountingField(field)

        def augmented(state: Tensor, t: Tensor) -> Tensor:
            # state: (B, d + 1) = [x flattened, accumulated log-density change]
            xs = state[:, :-1].reshape(shape)
            if eps is None:
                v, div = divergence_exact(counted, xs, t)
            else:
                v, div = divergence_hutchinson(counted, xs, t, eps)
            return torch.cat([v.reshape(b, -1), div[:, None]], 1)

        state = torch.cat([x.reshape(b, -1), torch.zeros(b, 1, dtype=x.dtype, device=x.device)], 1)
        ts = uniform_grid(1 if solver == "dopri5" else steps, t_lo, t_hi).flip(0)  # from data to noise
        kwargs = {"rtol": rtol, "atol": atol} if solver == "dopri5" else {}
        with torch.no_grad():
            end = ODE_SOLVERS[solver](augmented, state, ts, **kwargs).x
        z = end[:, :-1].reshape(shape)
        # the accumulated integral runs t_hi -> t_lo, i.e. it equals int_{t_lo}^{t_hi} -div dt
        delta = end[:, -1]
        prior = (prior_log_prob or gaussian_log_prob(path.prior_std()))(z)
    return LikelihoodOutput(log_prob=prior + delta, prior_log_prob=prior, delta_log_prob=delta, z=z,
                            nfe=counted.nfe)


def bits_per_dim(log_prob: Tensor, dim: int, bin_width: float) -> Tensor:
    """Bits per dimension of discrete data from the log-density of its uniformly dequantised values.

    For data on a grid of spacing ``bin_width`` (in the units the density is over) with
    dequantised points y = x + u * bin_width, u ~ U[0, 1)^D, log P(x) >= log p(y) + D log(bin_width)
    (Jensen), so this is an upper bound on the model's true bits/dim: ``(B,) -> (B,)``.
    """
    return -(log_prob + dim * math.log(bin_width)) / (dim * math.log(2))


def dequantize(levels: Tensor, bin_width: float, offset: float = 0.0,
               generator: torch.Generator | None = None) -> Tensor:
    """Integer levels ``k`` -> ``offset + (k + u) * bin_width`` with u ~ U[0, 1) per entry."""
    u = torch.rand(levels.shape, generator=generator, device=levels.device, dtype=torch.float32)
    return offset + (levels.float() + u) * bin_width
