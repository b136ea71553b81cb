"""What every sampler returns, and the one loop over a time grid that fixed-step samplers share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserError

Callback = Callable[[int, Tensor, Tensor], None]  # (step index, t_next, x_next)


@dataclass(frozen=True)
class SamplerOutput:
    """The result of a sampler.

    Attributes:
        x: ``(B, *D)`` the final state.
        nfe: the number of field evaluations used (per batch, not per sample).
        trajectory: ``(S + 1, B, *D)`` the states at every grid time including the start, or
            None when the trajectory was not asked for (then memory does not grow with steps).
        times: ``(S + 1,)`` the grid times of ``trajectory``, or None.
        network_evals: the network's evaluations per sample where a guided field counted them
            (:class:`..guidance.GuidedField`: twice per evaluation inside its interval, the condition and its null,
            once outside); None: one per field evaluation.
    """

    x: Tensor
    nfe: int
    trajectory: Tensor | None = None
    times: Tensor | None = None
    network_evals: int | None = None

    def cost_words(self) -> str:
        """``"8 NFE"``, or with guidance ``"8 NFE, 16 network evaluations (guided)"``: what sampling cost."""
        extra = self.network_evals is not None and self.network_evals != self.nfe
        return f"{self.nfe} NFE" + (f", {self.network_evals} network evaluations (guided)" if extra else "")


def check_grid(x: Tensor, ts: Tensor) -> Tensor:
    """Validate ``x: (B, *D)`` and a grid ``ts: (S + 1,)``; return ``ts`` on x's device and dtype."""
    if ts.ndim != 1 or ts.numel() < 2:
        raise UserError(f"ts must be a 1-d grid of at least 2 times, got shape {tuple(ts.shape)}")
    if x.ndim < 2:
        raise UserError(f"x must be batched, (B, *D); got shape {tuple(x.shape)}")
    return ts.to(device=x.device, dtype=x.dtype)


def march(
    step: Callable[[int, Tensor], Tensor],
    x: Tensor,
    ts: Tensor,
    nfe: Callable[[], int],
    *,
    trajectory: bool,
    callback: Callback | None,
) -> SamplerOutput:
    """Apply ``x <- step(i, x)`` for every interval ``[ts[i], ts[i + 1]]`` of the grid.

    States are kept only when ``trajectory`` is set, so memory is O(1) in the number of steps.
    """
    states = [x] if trajectory else None
    for i in range(ts.numel() - 1):
        x = step(i, x)
        if states is not None:
            states.append(x)
        if callback is not None:
            callback(i, ts[i + 1], x)
    traj = torch.stack(states) if states is not None else None
    return SamplerOutput(x=x, nfe=nfe(), trajectory=traj, times=ts if trajectory else None)
