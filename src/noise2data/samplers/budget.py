"""A budget of network evaluations (NFE) turned into a solver's number of steps.

A fixed-step Runge-Kutta method spends its number of stages per step (euler 1, midpoint and heun 2,
rk4 4); the multistep solvers (``dpm++2m``, ``dpm++3m``, ``unipc2``, ``unipc3``) spend one evaluation
per step, reusing the previous ones. ``--nfe N`` asks for exactly N evaluations; a budget a solver
cannot meet is refused with the budgets it can.
"""

from __future__ import annotations

from ..errors import UserError
from .multistep import MULTISTEP_ORDERS
from .ode import JUMP_SOLVERS, TABLEAUX

# evaluations per step: a tableau's stages; the multistep solvers reuse earlier evaluations (1 each);
# a jump model's sampler makes one jump per evaluation
STAGES: dict[str, int] = ({name: tab.stages for name, tab in TABLEAUX.items()} | dict.fromkeys(MULTISTEP_ORDERS, 1)
                          | dict.fromkeys(JUMP_SOLVERS, 1))


def solver_steps_for_nfe(solver: str, nfe: int, *, strict: bool = True) -> int | None:
    """The steps ``solver`` takes for exactly ``nfe`` network evaluations.

    With ``strict`` (the default) an impossible budget raises a :class:`UserError` naming the
    budgets the solver can meet; otherwise it returns None.
    """
    if solver == "dopri5":
        if strict:
            raise UserError("dopri5 chooses its own steps, so it cannot be held to --nfe: pass --steps "
                            f"(or pick a fixed-step solver: {', '.join(STAGES)})")
        return None
    if solver not in STAGES:
        raise UserError(f"unknown solver '{solver}': expected one of {', '.join(STAGES)}, dopri5")
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 1:
        raise UserError(f"--nfe must be a positive integer, got {nfe!r}")
    stages = STAGES[solver]
    if nfe % stages == 0:
        return nfe // stages
    if strict:
        raise UserError(f"{solver} spends {stages} evaluations per step, so it cannot use exactly {nfe}: "
                        f"ask for a multiple of {stages} ({', '.join(str(stages * k) for k in (1, 2, 3, 4))}, ...) "
                        "or another solver")
    return None
