"""Noise schedules of Gaussian probability paths, in closed form with exact time derivatives.

Convention (stated once for the whole library): time runs from noise at ``t = 0`` to data at
``t = 1``, and the conditional path is ``x_t = alpha_t * x1 + sigma_t * x0`` with ``x0 ~ N(0, I)``.
A schedule maps ``t: (B,)`` to a :class:`ScheduleOutput` of ``alpha_t, sigma_t`` and their
derivatives ``d_alpha = d alpha_t / dt``, ``d_sigma = d sigma_t / dt``, each ``(B,)``.

=============  ===============================  ==========================================
name           alpha_t                          sigma_t
=============  ===============================  ==========================================
``condot``     t                                1 - t
``cosine``     sin(pi t / 2)                    cos(pi t / 2)
``polynomial`` t^n                              1 - t^n
``vp``         exp(-1/2 int_0^{1-t} beta(r)dr)  sqrt(1 - alpha_t^2), beta(r) linear (DDPM)
``ve``         1                                s_min (s_max / s_min)^(1 - t) (geometric)
=============  ===============================  ==========================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from ..errors import UserError


@dataclass(frozen=True)
class ScheduleOutput:
    """alpha_t, sigma_t and their time derivatives, each ``(B,)``."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor


class Schedule(Protocol):
    """A callable ``t: (B,) -> ScheduleOutput``, with a registry ``name`` and JSON-able params."""

    name: ClassVar[str]

    def __call__(self, t: Tensor) -> ScheduleOutput: ...


@dataclass(frozen=True)
class CondOTSchedule:
    """The linear (conditional optimal transport) schedule: alpha_t = t, sigma_t = 1 - t."""

    name: ClassVar[str] = "condot"

    def __call__(self, t: Tensor) -> ScheduleOutput:
        one = torch.ones_like(t)
        return ScheduleOutput(alpha=t, sigma=1 - t, d_alpha=one, d_sigma=-one)


@dataclass(frozen=True)
class CosineSchedule:
    """alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2): variance preserving, alpha^2 + sigma^2 = 1."""

    name: ClassVar[str] = "cosine"

    def __call__(self, t: Tensor) -> ScheduleOutput:
        h = 0.5 * math.pi
        s, c = torch.sin(h * t), torch.cos(h * t)
        return ScheduleOutput(alpha=s, sigma=c, d_alpha=h * c, d_sigma=-h * s)


@dataclass(frozen=True)
class PolynomialSchedule:
    """alpha_t = t^n, sigma_t = 1 - t^n for an exponent ``n > 0``."""

    n: float = 2.0
    name: ClassVar[str] = "polynomial"

    def __post_init__(self) -> None:
        if not self.n > 0:
            raise UserError(f"polynomial schedule needs n > 0, got n={self.n}")

    def __call__(self, t: Tensor) -> ScheduleOutput:
        a = t**self.n
        da = self.n * t ** (self.n - 1)
        return ScheduleOutput(alpha=a, sigma=1 - a, d_alpha=da, d_sigma=-da)


@dataclass(frozen=True)
class VPSchedule:
    """Variance preserving (DDPM-style) with linear beta(r) = beta_min + r (beta_max - beta_min).

    With s = 1 - t (diffusion time), alpha_t = exp(-B(s)/2), B(s) = beta_min s + (beta_max -
    beta_min) s^2 / 2, and sigma_t = sqrt(1 - alpha_t^2). Note alpha_0 = exp(-B(1)/2) is small but
    not zero (0.0066 for the defaults), and d_sigma diverges at t = 1, like sqrt(1 - t).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    name: ClassVar[str] = "vp"

    def __post_init__(self) -> None:
        if not 0 < self.beta_min <= self.beta_max:
            raise UserError(
                f"vp schedule needs 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}"
            )

    def __call__(self, t: Tensor) -> ScheduleOutput:
        s = 1 - t
        beta = self.beta_min + (self.beta_max - self.beta_min) * s
        log_alpha = -0.5 * (self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2)
        alpha = torch.exp(log_alpha)
        sigma = torch.sqrt(-torch.expm1(2 * log_alpha))
        d_alpha = 0.5 * beta * alpha  # d log alpha / dt = beta(s) / 2
        d_sigma = -alpha * d_alpha / sigma  # from alpha^2 + sigma^2 = 1
        return ScheduleOutput(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma)


@dataclass(frozen=True)
class VESchedule:
    """Variance exploding: alpha_t = 1, sigma_t = sigma_min (sigma_max / sigma_min)^(1 - t).

    p_init is then N(0, sigma_max^2 I) (approximately: the data is still added at t = 0), so pick
    ``sigma_max`` at least the largest distance between data points (50 suits standardised data
    of up to a few hundred dimensions).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    name: ClassVar[str] = "ve"

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise UserError(
                f"ve schedule needs 0 < sigma_min < sigma_max, got {self.sigma_min}, "
                f"{self.sigma_max}"
            )

    def __call__(self, t: Tensor) -> ScheduleOutput:
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        sigma = self.sigma_min * torch.exp(log_ratio * (1 - t))
        return ScheduleOutput(
            alpha=torch.ones_like(t),
            sigma=sigma,
            d_alpha=torch.zeros_like(t),
            d_sigma=-log_ratio * sigma,
        )


SCHEDULES: dict[str, type] = {
    cls.name: cls
    for cls in (CondOTSchedule, CosineSchedule, PolynomialSchedule, VPSchedule, VESchedule)
}


def make_schedule(name: str, **params: float) -> Schedule:
    """Build a schedule by registry name with keyword parameters, validating both."""
    if name not in SCHEDULES:
        raise UserError(f"unknown schedule '{name}': expected one of {', '.join(SCHEDULES)}")
    cls = SCHEDULES[name]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise UserError(f"schedule '{name}' has no parameter {unknown[0]!r} (allowed: {allowed})")
    return cls(**{k: float(v) for k, v in params.items()})


def parse_schedule(spec: str) -> Schedule:
    """Parse ``"name"`` or ``"name:key=value,key=value"``, e.g. ``"ve:sigma_max=10"``."""
    name, _, rest = spec.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq:
            raise UserError(
                f"bad schedule parameter {item!r} in {spec!r}: write key=number, e.g. ve:sigma_max=10"
            )
    return make_schedule(name.strip().lower(), **params)


def schedule_spec(schedule: Schedule) -> dict:
    """The JSON-able description ``{"name": ..., **params}`` that :func:`make_schedule` inverts."""
    return {"name": schedule.name, **asdict(schedule)}  # type: ignore[call-overload]
