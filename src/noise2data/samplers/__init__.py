"""Samplers: time grids, ODE solvers, SDE solvers; all return a :class:`SamplerOutput`."""

from __future__ import annotations

from .budget import STAGES, solver_steps_for_nfe
from .grids import GRIDS, edm_grid, logsnr_grid, make_grid, refine_grid, uniform_grid
from .jumps import mean_flow_jumps
from .multistep import dpmpp_2m, dpmpp_3m, unipc_2, unipc_3
from .ode import (
    JUMP_SOLVERS,
    ODE_SOLVERS,
    ORDERS,
    TABLEAUX,
    ButcherTableau,
    dopri5,
    euler,
    heun,
    integrate,
    midpoint,
    rk4,
    steps_for_nfe,
)
from .output import SamplerOutput
from .sde import constant_diffusion, euler_maruyama, langevin, sde_drift

__all__ = [
    "GRIDS", "ODE_SOLVERS", "ORDERS", "TABLEAUX", "ButcherTableau", "SamplerOutput",
    "constant_diffusion", "dopri5", "edm_grid", "euler", "euler_maruyama", "heun", "integrate",
    "langevin", "make_grid", "midpoint", "rk4", "sde_drift", "steps_for_nfe", "uniform_grid",
    "JUMP_SOLVERS", "STAGES", "dpmpp_2m", "mean_flow_jumps", "dpmpp_3m", "logsnr_grid", "solver_steps_for_nfe",
    "unipc_2", "unipc_3", "refine_grid",
]
