"""What every sampler returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class SamplerOutput:
    """The result of a sampler.

    Attributes:
        x: ``(B, *D)`` the final state.
        nfe: the number of field evaluations used (per batch, not per sample).
        trajectory: ``(S + 1, B, *D)`` the states at every grid time including the start, or
            None when the trajectory was not asked for (then memory does not grow with steps).
        times: ``(S + 1,)`` the grid times of ``trajectory``, or None.
    """

    x: Tensor
    nfe: int
    trajectory: Tensor | None = None
    times: Tensor | None = None
