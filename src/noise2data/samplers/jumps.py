"""Sampling a jump model (MeanFlow) in one or a few steps.

A jump model predicts the average velocity ``u(x_t, t, r)`` of the flow over [t, r], so one step
``x_r = x_t + (r - t) u(x_t, t, r)`` lands where the ODE would, without discretisation error if the
model were exact. Over a grid ``ts`` the sampler makes one jump per interval (one evaluation each);
the grid's interior points are where it may correct course. Same signature as every sampler; the
field must accept ``r=`` (see :mod:`noise2data.fields`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..fields import CountingField, Field
from ..paths import GaussianPath
from .output import Callback, SamplerOutput, check_grid, march


def mean_flow_jumps(
    field: Field,
    x: Tensor,
    ts: Tensor,
    *,
    path: GaussianPath | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    callback: Callback | None = None,
) -> SamplerOutput:
    """Jump from ``ts[i]`` to ``ts[i + 1]`` with the average velocity, for every interval of ``ts: (S + 1,)``.

    ``x: (B, *D)`` is the state at ``ts[0]``; ``path`` and ``generator`` are unused (the common
    signature). Returns the state at ``ts[-1]`` after S evaluations.
    """
    ts = check_grid(x, ts)
    counted = CountingField(field)
    b = x.shape[0]

    def step(i: int, x: Tensor) -> Tensor:
        t, r = ts[i].expand(b), ts[i + 1].expand(b)
        return x + (ts[i + 1] - ts[i]) * counted(x, t, r=r)

    return march(step, x, ts, lambda: counted.nfe, trajectory=trajectory, callback=callback)


__all__ = ["mean_flow_jumps"]
