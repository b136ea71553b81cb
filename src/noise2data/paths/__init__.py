"""Gaussian probability paths: schedules, the path itself, and prediction conversions."""

from __future__ import annotations

from .conversion import PREDICTIONS, check_prediction, convert_prediction
from .gaussian import GaussianPath, PathSample
from .schedules import (
    SCHEDULES,
    CondOTSchedule,
    CosineSchedule,
    PolynomialSchedule,
    Schedule,
    ScheduleOutput,
    VESchedule,
    VPSchedule,
    make_schedule,
    parse_schedule,
)


def make_path(spec: str | dict) -> GaussianPath:
    """A Gaussian path from ``"name[:k=v,...]"`` or a dict ``{"name": ..., **params}``."""
    if isinstance(spec, str):
        return GaussianPath(parse_schedule(spec))
    params = dict(spec)
    return GaussianPath(make_schedule(params.pop("name"), **params))


__all__ = [
    "PREDICTIONS",
    "SCHEDULES",
    "CondOTSchedule",
    "CosineSchedule",
    "GaussianPath",
    "PathSample",
    "PolynomialSchedule",
    "Schedule",
    "ScheduleOutput",
    "VESchedule",
    "VPSchedule",
    "check_prediction",
    "convert_prediction",
    "make_path",
    "make_schedule",
    "parse_schedule",
]
