"""ODE samplers: fixed-step explicit Runge-Kutta methods and adaptive Dormand-Prince.

All share one signature, ``method(field, x, ts, *, path=None, generator=None, trajectory=False,
callback=None) -> SamplerOutput``, integrating dx/dt = field(x, t) from ``ts[0]`` to ``ts[-1]``
(``x: (B, *D)``, ``ts: (S + 1,)``). The fixed-step methods are Butcher tableaux (data, not code),
each with its declared order of convergence; the tests check that order on a known solution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserError, require
from ..fields import CountingField, Field
from ..paths import GaussianPath
from .jumps import mean_flow_jumps
from .multistep import MULTISTEP_ORDERS, dpmpp_2m, dpmpp_3m, unipc_2, unipc_3
from .output import Callback, SamplerOutput, check_grid, march


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: nodes ``c``, lower-triangular ``a``, weights ``b``."""

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    @property
    def stages(self) -> int:
        """Field evaluations per step."""
        return len(self.b)


EULER = ButcherTableau("euler", 1, (0.0,), ((),), (1.0,))
MIDPOINT = ButcherTableau("midpoint", 2, (0.0, 0.5), ((), (0.5,)), (0.0, 1.0))
HEUN = ButcherTableau("heun", 2, (0.0, 1.0), ((), (1.0,)), (0.5, 0.5))
RK4 = ButcherTableau(
    "rk4",
    4,
    (0.0, 0.5, 0.5, 1.0),
    ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    (1 / 6, 1 / 3, 1 / 3, 1 / 6),
)
TABLEAUX: dict[str, ButcherTableau] = {m.name: m for m in (EULER, MIDPOINT, HEUN, RK4)}


def rk_step(field: Field, x: Tensor, t: Tensor, dt: Tensor, tab: ButcherTableau) -> Tensor:
    """One explicit RK step from ``(x, t)`` over ``dt``; ``t, dt`` are 0-d tensors."""
    b = x.shape[0]
    ks: list[Tensor] = []
    for c_i, a_i in zip(tab.c, tab.a, strict=True):
        xi = x
        for a_ij, k in zip(a_i, ks, strict=False):
            if a_ij:
                xi = xi + (dt * a_ij) * k
        ks.append(field(xi, (t + c_i * dt).expand(b)))
    out = x
    for b_i, k in zip(tab.b, ks, strict=True):
        if b_i:
            out = out + (dt * b_i) * k
    return out


def integrate(
    field: Field,
    x: Tensor,
    ts: Tensor,
    *,
    method: str | ButcherTableau = "heun",
    path: GaussianPath | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> SamplerOutput:
    """Integrate dx/dt = field(x, t) over the grid ``ts`` with a fixed-step RK method.

    Args:
        field: the velocity field.
        x: ``(B, *D)`` the state at ``ts[0]``.
        ts: ``(S + 1,)`` the grid (increasing from noise to data, or decreasing to go back).
        method: a name in ``TABLEAUX`` or a :class:`ButcherTableau`.
        path: unused (the multistep solvers need it); accepted for the common sampler signature.
        generator: unused (ODEs are deterministic); accepted for the common sampler signature.
        trajectory: keep every state, ``(S + 1, B, *D)``; off by default so memory is O(1) in S.
        callback: called as ``callback(i, t_next, x_next)`` after step ``i``.
    """
    tab = TABLEAUX.get(method) if isinstance(method, str) else method
    if tab is None:
        raise UserError(f"unknown ODE method '{method}': expected one of {', '.join(TABLEAUX)}")
    ts = check_grid(x, ts)
    counted = CountingField(field)

    def step(i: int, x: Tensor) -> Tensor:
        return rk_step(counted, x, ts[i], ts[i + 1] - ts[i], tab)

    return march(step, x, ts, lambda: counted.nfe, trajectory=trajectory, callback=callback)


def euler(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """Euler's method (order 1). Keyword arguments as :func:`integrate`."""
    return integrate(field, x, ts, method=EULER, **kwargs)


def midpoint(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """The explicit midpoint method (order 2). Keyword arguments as :func:`integrate`."""
    return integrate(field, x, ts, method=MIDPOINT, **kwargs)


def heun(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """Heun's method, the explicit trapezoid (order 2). Keyword arguments as :func:`integrate`."""
    return integrate(field, x, ts, method=HEUN, **kwargs)


def rk4(field: Field, x: Tensor, ts: Tensor, **kwargs) -> SamplerOutput:
    """The classical Runge-Kutta method (order 4). Keyword arguments as :func:`integrate`."""
    return integrate(field, x, ts, method=RK4, **kwargs)


def dopri5(
    field: Field,
    x: Tensor,
    ts: Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    path: GaussianPath | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> SamplerOutput:
    """Adaptive Dormand-Prince 5(4) through torchdiffeq; reports the NFE it used.

    Only the end points of ``ts`` matter for accuracy (the solver picks its own steps); the
    states are returned at every time of ``ts`` when ``trajectory`` is set.
    """
    torchdiffeq = require("torchdiffeq", "ode", "the adaptive dopri5 solver")
    ts = check_grid(x, ts)
    if ts.numel() != 2 and not trajectory:
        ts = ts[[0, -1]]
    counted = CountingField(field)
    b = x.shape[0]
    shape = x.shape

    def f(t: Tensor, y: Tensor) -> Tensor:
        return counted(y.view(shape), t.expand(b)).reshape(y.shape)

    ys = torchdiffeq.odeint(f, x, ts, method="dopri5", rtol=rtol, atol=atol)
    if callback is not None:
        for i in range(1, ts.numel()):
            callback(i - 1, ts[i], ys[i])
    return SamplerOutput(
        x=ys[-1], nfe=counted.nfe, trajectory=ys if trajectory else None,
        times=ts if trajectory else None,
    )


ODE_SOLVERS: dict[str, Callable[..., SamplerOutput]] = {
    "euler": euler,
    "midpoint": midpoint,
    "heun": heun,
    "rk4": rk4,
    "dopri5": dopri5,
    "dpm++2m": dpmpp_2m,
    "dpm++3m": dpmpp_3m,
    "unipc2": unipc_2,
    "unipc3": unipc_3,
    "meanflow": mean_flow_jumps,  # jump models only (trained with --objective meanflow or distilled)
}
JUMP_SOLVERS = ("meanflow",)
ORDERS: dict[str, int] = {name: tab.order for name, tab in TABLEAUX.items()} | {"dopri5": 5} | MULTISTEP_ORDERS
# (a jump model's sampler has no order: its error is the model's, not the discretisation's)


def steps_for_nfe(solver: str, nfe: int) -> int | None:
    """The number of steps a fixed-step solver takes for a budget of ``nfe`` evaluations (None: impossible)."""
    from .budget import solver_steps_for_nfe

    return solver_steps_for_nfe(solver, nfe, strict=False)


__all__ = [
    "EULER", "HEUN", "JUMP_SOLVERS", "MIDPOINT", "ODE_SOLVERS", "ORDERS", "RK4", "TABLEAUX", "ButcherTableau",
    "dopri5", "euler", "heun", "integrate", "midpoint", "rk4", "rk_step",
    "steps_for_nfe",
]
