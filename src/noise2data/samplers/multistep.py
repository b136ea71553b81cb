"""Multistep exponential integrators in data-prediction form: DPM-Solver++ (2M, 3M) for any Gaussian path.

Along ``x_t = alpha_t x1 + sigma_t x0`` with the data prediction D(x, t) = E[x1 | x_t = x] and the
half log-SNR lambda = log(alpha / sigma), the probability-flow ODE has the exact solution

    x(t') = (sigma' / sigma) x(t) + sigma' * int_lambda^lambda' e^s D(s) ds        (Lu et al. 2022)

The linear part is integrated exactly; D is replaced by the polynomial in lambda through the current
and the previous one (2M) or two (3M) data predictions, and the integral of e^s times that polynomial
is taken in closed form (``phi`` below). Each step costs one network evaluation: 8 steps for 8 NFE,
where a two-stage Runge-Kutta method gets 4.

Where a step's lambda-interval is infinite the method drops to the order it can keep: the first
step from pure noise (alpha = 0) and the last step onto the data (sigma = 0) are exact for constant D,
so a run always starts with a first-order step and ends with the data prediction of the last state
(a polynomial cannot be extrapolated to lambda = infinity). The velocity field the solver is given is
turned into D through the path (:func:`noise2data.paths.convert_prediction`), so any model objective
works.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import UserError
from ..fields import CountingField, Field
from ..paths import GaussianPath, convert_prediction
from .output import Callback, SamplerOutput, check_grid, march


def phi(h: float) -> tuple[float, float, float]:
    """int_0^h (h - v)^k e^{-v} dv for k = 0, 1, 2 (all finite for finite h >= 0)."""
    a0 = -math.expm1(-h)
    a1 = h - a0
    a2 = h * h - 2 * a1
    return a0, a1, a2


def half_log_snr(path: GaussianPath, t: Tensor) -> Tensor:
    """lambda(t) = log(alpha_t / sigma_t), float64; -inf where alpha = 0, +inf where sigma = 0."""
    c = path.coeffs(t.reshape(1).to(torch.float64))
    return (torch.log(c.alpha) - torch.log(c.sigma)).reshape(())


def multistep(
    field: Field,
    x: Tensor,
    ts: Tensor,
    *,
    order: int,
    path: GaussianPath | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> SamplerOutput:
    """DPM-Solver++ of ``order`` 1, 2 or 3 over the increasing grid ``ts: (S + 1,)`` from ``x: (B, *D)``.

    ``field`` is the velocity field of ``path`` (required); ``generator`` is unused (the ODE is
    deterministic) and accepted for the common sampler signature.
    """
    if path is None:
        raise UserError("the multistep solvers (dpm++2m, dpm++3m) need the probability path: pass path=")
    if order not in (1, 2, 3):
        raise UserError(f"DPM-Solver++ order must be 1, 2 or 3, got {order}")
    ts = check_grid(x, ts)
    if not bool((ts[1:] > ts[:-1]).all()):
        raise UserError("the multistep solvers integrate from noise to data only: the grid must increase")
    counted = CountingField(field)
    b = x.shape[0]
    lam = [float(half_log_snr(path, t)) for t in ts]
    history: list[tuple[float, Tensor]] = []  # (lambda_i, D_i), newest last

    def data_prediction(x: Tensor, t: Tensor) -> Tensor:
        tt = t.expand(b).to(x.dtype)
        v = counted(x, tt)
        return convert_prediction(v, x, path.coeffs(tt), "velocity", "data")

    def step(i: int, x: Tensor) -> Tensor:
        t, t_next = ts[i], ts[i + 1]
        d = data_prediction(x, t)
        history.append((lam[i], d))
        del history[:-3]
        c, c_next = path.coeffs(t.reshape(1).to(torch.float64)), path.coeffs(t_next.reshape(1).to(torch.float64))
        alpha_next, sigma_next, sigma = float(c_next.alpha), float(c_next.sigma), float(c.sigma)
        if sigma_next == 0.0:  # onto the data: lambda' = infinity, only the constant term survives
            return d
        h = lam[i + 1] - lam[i]
        ratio = sigma_next / sigma if sigma > 0 else 0.0
        if math.isinf(h):  # from pure noise (alpha = 0): e^{-h} = 0
            return ratio * x + alpha_next * d
        a0, a1, a2 = phi(h)
        incr = a0 * d
        usable = [hd for hd in history[:-1] if math.isfinite(hd[0])]
        k = min(order - 1, len(usable))
        if k >= 1:  # slope of the interpolating polynomial at lambda_i (Newton divided differences)
            l1, d1 = usable[-1]
            h1 = lam[i] - l1
            dd1 = (d - d1) / h1
            slope, curve = dd1, None
            if k >= 2:
                l2, d2 = usable[-2]
                h2 = l1 - l2
                dd2 = (d1 - d2) / h2
                curve = (dd1 - dd2) / (h1 + h2)  # p(u) = d + dd1 u + curve u (u + h1)
                slope = dd1 + curve * h1
            incr = incr + a1 * slope
            if curve is not None:
                incr = incr + a2 * curve  # p''(0) / 2 = curve
        return ratio * x + alpha_next * incr

    return march(step, x, ts, lambda: counted.nfe, trajectory=trajectory, callback=callback)


def dpmpp_2m(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """DPM-Solver++(2M): second order, one evaluation per step. Keyword arguments as :func:`multistep`."""
    return multistep(field, x, ts, order=2, **kwargs)


def dpmpp_3m(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """DPM-Solver++(3M): third order, one evaluation per step. Keyword arguments as :func:`multistep`."""
    return multistep(field, x, ts, order=3, **kwargs)


MULTISTEP_ORDERS = {"dpm++2m": 2, "dpm++3m": 3}
