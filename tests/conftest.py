"""Shared fixtures: every schedule, and a float64 default for oracle tests."""

from __future__ import annotations

import pytest
import torch

from noise2data.paths import GaussianPath, make_schedule

SCHEDULE_NAMES = ["condot", "cosine", "polynomial", "vp", "ve"]


@pytest.fixture(params=SCHEDULE_NAMES)
def path(request) -> GaussianPath:
    return GaussianPath(make_schedule(request.param))


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
