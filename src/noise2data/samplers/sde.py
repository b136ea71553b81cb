"""SDE samplers: Euler-Maruyama for the SDE extension of a flow, and Langevin dynamics.

The SDE extension trick: if ``u_t`` is the marginal velocity of a path and ``s_t = grad log p_t``
its score, then for *any* diffusion coefficient ``g(t) >= 0`` the SDE

    dX_t = [u_t(X_t) + g(t)^2 / 2 * s_t(X_t)] dt + g(t) dW_t

has the same marginals p_t as the ODE dX_t = u_t(X_t) dt (g = 0). :func:`sde_drift` builds that
drift; :func:`euler_maruyama` integrates it from noise (t = 0) to data (t = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..broadcast import append_dims, expand_time
from ..errors import UserError
from ..fields import CountingField, Field
from ..paths import GaussianPath
from .output import Callback, SamplerOutput, check_grid, march

Diffusion = Callable[[Tensor], Tensor]  # g(t): (B,) -> (B,)


def constant_diffusion(g: float) -> Diffusion:
    """The diffusion coefficient g(t) = g for every t."""
    if not (math.isfinite(g) and g >= 0):
        raise UserError(f"the diffusion coefficient must be finite and >= 0, got {g}")
    return lambda t: torch.full_like(t, g)


def sde_drift(
    velocity: Field,
    diffusion: Diffusion,
    *,
    score: Field | None = None,
    path: GaussianPath | None = None,
) -> Field:
    """The drift ``u_t(x) + g(t)^2 / 2 * s_t(x)`` of the SDE extension.

    Give the score field, or the ``path`` so that the score is derived from the velocity (one
    network evaluation per step instead of two).
    """
    if score is None:
        if path is None:
            raise UserError("sde_drift needs either a score field or the path to derive it")

        def drift(x: Tensor, t: Tensor) -> Tensor:
            v = velocity(x, t)
            s = path.convert(v, x, t, "velocity", "score")
            return v + append_dims(0.5 * diffusion(t) ** 2, x.ndim) * s

        return drift

    def drift_with_score(x: Tensor, t: Tensor) -> Tensor:
        return velocity(x, t) + append_dims(0.5 * diffusion(t) ** 2, x.ndim) * score(x, t)

    return drift_with_score


def euler_maruyama(
    drift: Field,
    x: Tensor,
    ts: Tensor,
    *,
    diffusion: Diffusion,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    callback: Callback | None = None,
    noise_last_step: bool = False,
) -> SamplerOutput:
    """Euler-Maruyama: ``x <- x + drift(x, t) dt + g(t) sqrt(dt) z``, ``z ~ N(0, I)``.

    Args:
        drift: the drift field, e.g. from :func:`sde_drift`.
        x: ``(B, *D)`` the state at ``ts[0]``.
        ts: ``(S + 1,)`` increasing grid.
        diffusion: g(t), ``(B,) -> (B,)``.
        generator: the source of the Brownian increments, for reproducible samples.
        trajectory: keep every state ``(S + 1, B, *D)``.
        callback: ``callback(i, t_next, x_next)`` after step ``i``.
        noise_last_step: add noise on the last step too; by default the last step is the
            drift alone, so the result carries no fresh noise of size g sqrt(dt).

    The drift is evaluated at the left end of every step only, so never at ``ts[-1]``.
    """
    ts = check_grid(x, ts)
    if not bool((ts[1:] > ts[:-1]).all()):
        raise UserError("Euler-Maruyama integrates forward in time: ts must increase")
    counted = CountingField(drift)
    last = ts.numel() - 2

    def step(i: int, x: Tensor) -> Tensor:
        dt = ts[i + 1] - ts[i]
        tb = expand_time(ts[i], x)
        x = x + dt * counted(x, tb)
        if i < last or noise_last_step:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + append_dims(diffusion(tb), x.ndim) * dt.sqrt() * z
        return x

    return march(step, x, ts, lambda: counted.nfe, trajectory=trajectory, callback=callback)


def langevin(
    score: Field,
    x: Tensor,
    *,
    step_size: float,
    n_steps: int,
    t: float = 1.0,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
) -> SamplerOutput:
    """Unadjusted Langevin dynamics for the density whose score is ``score(., t)``.

    ``x <- x + eps * score(x, t) + sqrt(2 eps) z``. Its stationary law approaches the target as
    ``step_size -> 0`` (bias O(eps)); mixing takes about (target scale)^2 / eps steps.
    """
    if not step_size > 0:
        raise UserError(f"Langevin step_size must be > 0, got {step_size}")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise UserError(f"Langevin n_steps must be a positive integer, got {n_steps!r}")
    counted = CountingField(score)
    tb = expand_time(t, x)
    states = [x] if trajectory else None
    noise_scale = math.sqrt(2 * step_size)
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + step_size * counted(x, tb) + noise_scale * z
        if states is not None:
            states.append(x)
    traj = torch.stack(states) if states is not None else None
    return SamplerOutput(x=x, nfe=counted.nfe, trajectory=traj)


__all__ = ["Diffusion", "constant_diffusion", "euler_maruyama", "langevin", "sde_drift"]
