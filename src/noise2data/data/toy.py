"""Toy distributions generated in code, and Gaussian mixtures with given means/covariances.

Every sampler takes ``n`` and a ``torch.Generator`` and returns float32 ``(n, d)`` (the classic toys
here are 2-D; :mod:`.suite` adds sharp, heavy-tailed, holed and 6-/10-D laws), so datasets are
reproducible from a seed and need no download.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import UserError
from .suite import SUITE

Sampler = Callable[[int, torch.Generator], Tensor]


def checkerboard(n: int, generator: torch.Generator) -> Tensor:
    """Uniform on the 8 dark squares of a 4x4 board covering [-4, 4]^2 (squares of side 2)."""
    cell = torch.randint(0, 8, (n,), generator=generator)
    row = cell // 2  # 0..3
    col = 2 * (cell % 2) + (row % 2)  # alternate columns row by row
    u = torch.rand(n, 2, generator=generator)
    x = (col.float() + u[:, 0]) * 2 - 4
    y = (row.float() + u[:, 1]) * 2 - 4
    return torch.stack([x, y], 1)


def moons(n: int, generator: torch.Generator, noise: float = 0.05) -> Tensor:
    """Two interleaving half circles (radius 1) with Gaussian noise of std ``noise``."""
    upper = torch.rand(n, generator=generator) < 0.5
    theta = torch.rand(n, generator=generator) * math.pi
    x = torch.where(upper, torch.cos(theta), 1 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=generator)
    return pts


def circles(n: int, generator: torch.Generator, noise: float = 0.04, factor: float = 0.5) -> Tensor:
    """Two concentric circles of radius 1 and ``factor``, with Gaussian noise."""
    inner = torch.rand(n, generator=generator) < 0.5
    theta = torch.rand(n, generator=generator) * 2 * math.pi
    r = torch.where(inner, torch.full((n,), factor), torch.ones(n))
    pts = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1)
    return pts + noise * torch.randn(n, 2, generator=generator)


def eight_gaussians(n: int, generator: torch.Generator, radius: float = 2.0, std: float = 0.15) -> Tensor:
    """Eight Gaussians of std ``std`` evenly spaced on a circle of radius ``radius``."""
    k = torch.randint(0, 8, (n,), generator=generator).float()
    centers = radius * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    return centers + std * torch.randn(n, 2, generator=generator)


def spirals(n: int, generator: torch.Generator, noise: float = 0.05, turns: float = 1.5) -> Tensor:
    """Two interleaved Archimedean spirals of ``turns`` turns, with Gaussian noise."""
    arm = (torch.rand(n, generator=generator) < 0.5).float()
    s = torch.sqrt(torch.rand(n, generator=generator))  # uniform along the arc, roughly
    theta = s * turns * 2 * math.pi + arm * math.pi
    r = 0.25 + 1.75 * s
    pts = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1)
    return pts + noise * torch.randn(n, 2, generator=generator)


CLASSIC_TOYS: dict[str, Sampler] = {
    "checkerboard": checkerboard,
    "moons": moons,
    "circles": circles,
    "8gaussians": eight_gaussians,
    "spirals": spirals,
}


TOY_DATASETS: dict[str, Sampler] = CLASSIC_TOYS | SUITE


def sample_toy(name: str, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws from a toy distribution by name, ``(n, d)`` float32."""
    if name not in TOY_DATASETS:
        raise UserError(f"unknown toy dataset '{name}': expected one of {', '.join(TOY_DATASETS)}")
    return TOY_DATASETS[name](n, generator)
