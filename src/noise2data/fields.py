"""Vector fields: the one signature every sampler integrates.

A field is any callable ``field(x, t) -> Tensor`` with ``x: (B, *D)``, ``t: (B,)`` returning
``(B, *D)``. A field of a jump model (MeanFlow) also takes ``r=`` (``(B,)``, the end of a jump) and
returns the average velocity over [t, r]; without ``r`` it is the instantaneous velocity.
A trained network becomes a field through :func:`model_field`, which converts the
network's prediction (velocity, noise, data or score) to the kind a sampler asks for. Conditions
are bound here (``cond``), so no sampler knows about them; guidance wraps a field and returns one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .errors import UserError
from .paths import GaussianPath, check_prediction

Field = Callable[[Tensor, Tensor], Tensor]


def model_field(
    model: torch.nn.Module,
    path: GaussianPath,
    prediction: str,
    *,
    cond: Tensor | None = None,
    kind: str = "velocity",
) -> Field:
    """Wrap ``model(x, t, cond)``, which predicts ``prediction``, as a field of kind ``kind``.

    Args:
        model: a network with ``forward(x, t, cond=None)``.
        path: the path it was trained on.
        prediction: what the model outputs (``velocity``, ``noise``, ``data`` or ``score``).
        cond: ``(B, ...)`` a condition for every sample, or None.
        kind: what the field returns; ``velocity`` for ODE samplers, ``score`` for Langevin.
    """
    check_prediction(prediction)
    check_prediction(kind)

    def field(x: Tensor, t: Tensor, r: Tensor | None = None) -> Tensor:
        if r is not None:  # a jump: the average velocity over [t, r] (MeanFlow models predict velocities)
            if prediction != "velocity" or kind != "velocity":
                raise UserError("jumps over [t, r] are average velocities: only a velocity field takes r")
            return model(x, t, cond, r)
        out = model(x, t, cond)
        return path.convert(out, x, t, prediction, kind)

    return field


def velocity_to_score(velocity: Field, path: GaussianPath) -> Field:
    """The score field implied by a marginal velocity field on a Gaussian path."""

    def score(x: Tensor, t: Tensor) -> Tensor:
        return path.convert(velocity(x, t), x, t, "velocity", "score")

    return score


class CountingField:
    """A field that counts its evaluations (number of function evaluations, NFE)."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Tensor) -> Tensor:
        self.nfe += 1
        return self.field(x, t, **kwargs)
