"""Classifier-free guidance: a wrapper that takes fields and returns a field.

With a conditional field u(x, t | y) and an unconditional one u(x, t | null) (one network
trained with labels dropped to a null class with some probability), guidance of scale w is

    u_w = u(x | null) + w * (u(x | y) - u(x | null)),

so w = 0 is the unconditional field, w = 1 the conditional one and w > 1 extrapolates away from
the unconditional field. For a Gaussian path the velocity is affine in the score with the same
coefficients for both fields, so this is the same as guiding the score:
grad log p_t(x) + w grad log p_t(y | x). Guidance can be restricted to a time interval (outside
it the conditional field is used as is), and works with every ODE and SDE sampler.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .errors import UserError
from .fields import Field, model_field
from .models.conditioning import check_condition, condition_kind, null_condition
from .paths import GaussianPath


def check_interval(interval: tuple[float, float]) -> tuple[float, float]:
    lo, hi = interval
    if not 0.0 <= lo <= hi <= 1.0:
        raise UserError(f"the guidance interval must satisfy 0 <= lo <= hi <= 1, got {interval}")
    return lo, hi


def interval_words(interval: tuple[float, float] | list[float] | None, scale: float | None = None) -> str:
    """``" on t in [0.3, 1]"`` for guidance limited to an interval; nothing for the whole way (or None), or
    for a ``scale`` of 1 (no guidance, so no interval to speak of)."""
    if interval is None or tuple(interval) == (0.0, 1.0) or scale == 1.0:
        return ""
    return " on t in [{:g}, {:g}]".format(*interval)


def guide(c: Tensor, u: Tensor, t: Tensor, scale: float, interval: tuple[float, float]) -> Tensor:
    """``u + scale * (c - u)`` where ``t: (B,)`` lies in ``interval``, ``c`` elsewhere; ``(B, *D)``."""
    g = u + scale * (c - u)
    lo, hi = interval
    if lo == 0.0 and hi == 1.0:
        return g
    inside = ((t >= lo) & (t <= hi)).view(-1, *[1] * (c.ndim - 1))
    return torch.where(inside, g, c)


class GuidedField:
    """A guided field (:func:`classifier_free_guidance`, :func:`guided_model_field`) that counts what it costs.

    ``pair(x, t, **kwargs) -> (conditional, unconditional)`` evaluates both; where no ``t`` of the batch lies in
    ``interval`` only ``conditional`` is evaluated, since the null field's value would be thrown away.
    ``network_evals`` counts the network's evaluations per sample: 2 per call inside the interval, 1 outside.
    """

    def __init__(self, conditional: Field, pair: Callable[..., tuple[Tensor, Tensor]], scale: float,
                 interval: tuple[float, float]) -> None:
        self.conditional, self.pair, self.scale = conditional, pair, scale
        self.interval = check_interval(interval)
        self.network_evals = 0

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Tensor) -> Tensor:
        lo, hi = self.interval
        if self.scale == 1.0 or not bool(((t >= lo) & (t <= hi)).any()):
            self.network_evals += 1
            return self.conditional(x, t, **kwargs)
        self.network_evals += 2
        c, u = self.pair(x, t, **kwargs)
        return guide(c, u, t, self.scale, self.interval)


def classifier_free_guidance(conditional: Field, unconditional: Field, scale: float,
                             interval: tuple[float, float] = (0.0, 1.0)) -> GuidedField:
    """The guided field ``u(x|null) + scale * (u(x|y) - u(x|null))`` for t in ``interval``.

    Outside ``interval`` the field is ``conditional`` (and ``unconditional`` is not evaluated). Both inputs are
    fields ``(x, t) -> (B, *D)``; the result counts its network evaluations (:class:`GuidedField`).
    """

    def pair(x: Tensor, t: Tensor, **kwargs: Tensor) -> tuple[Tensor, Tensor]:
        return conditional(x, t, **kwargs), unconditional(x, t, **kwargs)

    return GuidedField(conditional, pair, scale, interval)


def guided_model_field(model: nn.Module, path: GaussianPath, prediction: str, labels: Tensor, scale: float,
                       *, interval: tuple[float, float] = (0.0, 1.0), kind: str = "velocity") -> Field:
    """Guidance for a network trained with condition dropout: ``labels`` against the null condition.

    ``labels`` are class labels ``(B,)`` (the null label is ``model.config.num_classes``) or, for a
    model with vector conditions, ``(B, cond_dim)`` (the null condition is a row of NaN). Inside ``interval``
    both evaluations run as one batch of 2B, which is faster than two calls on most hardware; outside it only
    the conditional one (a :class:`GuidedField` that counts them; scale 1: the plain conditional field).
    """
    interval = check_interval(interval)
    num_classes, cond_dim = condition_kind(model)
    if not num_classes and not cond_dim:
        raise UserError("guidance needs a model trained with labels or vector conditions; this one has none")
    labels = torch.as_tensor(labels)
    check_condition(labels, len(labels), num_classes, cond_dim, allow_null=False)
    conditional = model_field(model, path, prediction, cond=labels, kind=kind)
    if scale == 1.0:
        return conditional
    both = model_field(model, path, prediction, cond=torch.cat([labels, null_condition(labels, num_classes)]),
                       kind=kind)

    def pair(x: Tensor, t: Tensor, r: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out = both(torch.cat([x, x]), torch.cat([t, t]), r=torch.cat([r, r]) if r is not None else None)
        return out[: len(x)], out[len(x):]

    return GuidedField(conditional, pair, scale, interval)
