"""Multistep exponential integrators in data-prediction form: DPM-Solver++ (2M, 3M) and UniPC for any Gaussian path.

Along ``x_t = alpha_t x1 + sigma_t x0`` with the data prediction D(x, t) = E[x1 | x_t = x] and the
half log-SNR lambda = log(alpha / sigma), the probability-flow ODE has the exact solution

    x(t') = (sigma' / sigma) x(t) + alpha' * int_0^h e^{u - h} D(lambda + u) du,  h = lambda' - lambda

(Lu et al. 2022).

The linear part is integrated exactly; D is replaced by the polynomial in lambda through a few
data predictions, and the integral of e^{u - h} times that polynomial is taken in closed form: a
quadrature rule whose weights (:func:`exp_weights`) are exact for polynomials through the nodes.

- **DPM-Solver++ (2M, 3M)**: the polynomial through the current and the previous one (2M) or two (3M)
  data predictions, extrapolated over the step (an exponential Adams-Bashforth method). One network
  evaluation per step: 8 steps for 8 NFE, where a two-stage Runge-Kutta method gets 4.
- **UniPC (2, 3)** (Zhao et al. 2023): the same predictor, then a corrector once the network has been
  evaluated at the predicted point, for the next step anyway: the step is redone with the polynomial
  through the new data prediction too (interpolated, not extrapolated: an exponential Adams-Moulton
  method), which raises the order by one at no extra evaluation. The new prediction, made at the
  uncorrected point, is kept as the model's value there. The paper approximates the integrals of its
  corrector with a chosen B(h); here they are exact, as for the predictor. The last step has no
  corrector (it would cost an evaluation); a trajectory records the predicted states.

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


def exp_moments(h: float, k: int) -> list[float]:
    """``[int_0^h u^j e^{u - h} du for j = 0 .. k]``, accurate for every finite h >= 0.

    For h <= 1 from the series e^{-h} sum_n h^{n+j+1} / (n! (n + j + 1)) (no cancellation); beyond,
    from the recurrence m_j = h^j - j m_{j-1}, m_0 = 1 - e^{-h}.
    """
    if h <= 1.0:
        out = []
        for j in range(k + 1):
            term, total, n = h ** (j + 1), 0.0, 0
            while True:  # term = h^{n+j+1} / n!
                total += term / (n + j + 1)
                n += 1
                term *= h / n
                if term < 1e-17 * total:
                    break
            out.append(math.exp(-h) * total)
        return out
    out = [-math.expm1(-h)]
    for j in range(1, k + 1):
        out.append(h ** j - j * out[-1])
    return out


def phi(h: float) -> tuple[float, float, float]:
    """int_0^h (h - v)^k e^{-v} dv for k = 0, 1, 2 (the moments of :func:`exp_moments`, substituting u = h - v)."""
    a0, a1, a2 = exp_moments(h, 2)
    return a0, a1, a2


def exp_weights(nodes: list[float], h: float) -> list[float]:
    """Weights ``w`` with ``sum_j w_j p(u_j) = int_0^h e^{u - h} p(u) du`` for every polynomial ``p`` of
    degree < len(nodes), at distinct ``nodes`` u_j (offsets in lambda from the step's start)."""
    r = torch.tensor(nodes, dtype=torch.float64) / h  # scaled to the step: a well-conditioned system
    powers = torch.arange(len(nodes), dtype=torch.float64)
    vander = r[None, :] ** powers[:, None]  # (k, k): row j holds r_i^j
    moments = torch.tensor(exp_moments(h, len(nodes) - 1), dtype=torch.float64) / h ** powers
    return torch.linalg.solve(vander, moments).tolist()


def multistep(
    field: Field,
    x: Tensor,
    ts: Tensor,
    *,
    order: int,
    corrector: bool = False,
    path: GaussianPath | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> SamplerOutput:
    """DPM-Solver++ of ``order`` 1, 2 or 3 (UniPC with ``corrector``) over the increasing grid
    ``ts: (S + 1,)`` from ``x: (B, *D)``.

    ``field`` is the velocity field of ``path`` (required); ``generator`` is unused (the ODE is
    deterministic) and accepted for the common sampler signature.
    """
    name = "UniPC" if corrector else "DPM-Solver++"
    if path is None:
        raise UserError("the multistep solvers (dpm++2m, dpm++3m, unipc2, unipc3) need the probability path: "
                        "pass path=")
    if order not in (1, 2, 3):
        raise UserError(f"{name} order must be 1, 2 or 3, got {order}")
    ts = check_grid(x, ts)
    if not bool((ts[1:] > ts[:-1]).all()):
        raise UserError("the multistep solvers integrate from noise to data only: the grid must increase")
    counted = CountingField(field)
    b = x.shape[0]
    c = path.coeffs(ts.to(torch.float64))
    alpha, sigma = c.alpha.tolist(), c.sigma.tolist()
    lam = (torch.log(c.alpha) - torch.log(c.sigma)).tolist()  # half log-SNR: -inf at alpha = 0, +inf at sigma = 0
    history: list[tuple[float, Tensor]] = []  # (lambda_j, D_j) at finite lambda, newest last
    pending: list[tuple[Tensor, list[tuple[float, Tensor]]]] = []  # UniPC: the last step's start and nodes

    def data_prediction(x: Tensor, t: Tensor) -> Tensor:
        tt = t.expand(b).to(x.dtype)
        v = counted(x, tt)
        return convert_prediction(v, x, path.coeffs(tt), "velocity", "data")

    def advance(i: int, x: Tensor, nodes: list[tuple[float, Tensor]]) -> Tensor:
        """x at ts[i + 1] from x at ts[i], D replaced by the polynomial through ``nodes`` (finite h)."""
        h = lam[i + 1] - lam[i]
        w = exp_weights([node - lam[i] for node, _ in nodes], h)
        incr = sum(wj * dj for wj, (_, dj) in zip(w, nodes, strict=True))
        return (sigma[i + 1] / sigma[i]) * x + alpha[i + 1] * incr

    def step(i: int, x: Tensor) -> Tensor:
        d = data_prediction(x, ts[i])
        if pending:  # UniPC: redo the last step with the polynomial through this prediction too
            start, nodes = pending.pop()
            x = advance(i - 1, start, nodes + [(lam[i], d)])
        if math.isfinite(lam[i]):
            history.append((lam[i], d))
            del history[:-order]
        if sigma[i + 1] == 0.0:  # onto the data: lambda' = infinity, only the constant term survives
            return d
        if math.isinf(lam[i]):  # from pure noise (alpha = 0): e^{-h} = 0, exact for constant D
            return (sigma[i + 1] / sigma[i]) * x + alpha[i + 1] * d
        nodes = history[-order:]
        if corrector:
            pending.append((x, nodes))
        return advance(i, x, nodes)

    return march(step, x, ts, lambda: counted.nfe, trajectory=trajectory, callback=callback)


def dpmpp_2m(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """DPM-Solver++(2M): second order, one evaluation per step. Keyword arguments as :func:`multistep`."""
    return multistep(field, x, ts, order=2, **kwargs)


def dpmpp_3m(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """DPM-Solver++(3M): third order, one evaluation per step. Keyword arguments as :func:`multistep`."""
    return multistep(field, x, ts, order=3, **kwargs)


def unipc_2(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """UniPC with the 2M predictor and its corrector: third order, one evaluation per step (see the module)."""
    return multistep(field, x, ts, order=2, corrector=True, **kwargs)


def unipc_3(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """UniPC with the 3M predictor and its corrector: one evaluation per step (see the module)."""
    return multistep(field, x, ts, order=3, corrector=True, **kwargs)


MULTISTEP_ORDERS = {"dpm++2m": 2, "dpm++3m": 3, "unipc2": 3, "unipc3": 4}  # the order of each method's steps
