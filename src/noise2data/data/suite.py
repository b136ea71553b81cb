"""The benchmark suite beyond the classic toys: sharp, many-mode, heavy-tailed and holed laws.

Each sampler takes ``n`` and a ``torch.Generator`` and returns float32 ``(n, d)``; each law is stated
in its docstring, and where its density is known in closed form :func:`suite_log_prob` gives it.
They are what `benchmarks/recipe.py` chooses the vector defaults on, and users can train on them by
name like any toy (``--data rings``).

    rings     2-D  four thin concentric rings (radial noise 0.02): sharp structure
    wave      2-D  a thin sine curve (noise 0.03): a 1-D manifold with curvature
    holes     2-D  uniform on a square with five round holes: flat density, hard edges
    student   2-D  a correlated Student t with 5 degrees of freedom: heavy tails
    gmm6      6-D  16 Gaussians (std 0.25) at fixed random centres: many modes
    gmm10    10-D  32 Gaussians (std 0.3) at fixed random centres: many modes, higher dimension
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import Tensor

from .mixture import GaussianMixture

RING_RADII = (0.5, 1.0, 1.5, 2.0)
RING_NOISE = 0.02
WAVE_NOISE = 0.03
HOLES_HALF_WIDTH = 2.0
HOLES = ((0.0, 0.0, 0.6), (-1.1, -1.1, 0.45), (1.1, -1.1, 0.45), (-1.1, 1.1, 0.45), (1.1, 1.1, 0.45))  # (x, y, r)
STUDENT_DOF = 5.0
STUDENT_SCALE = ((1.0, 0.0), (0.6, 0.8))  # the Cholesky factor L of the scale matrix L L^T


def rings(n: int, generator: torch.Generator) -> Tensor:
    """Four concentric circles of radii 0.5, 1, 1.5, 2, each point's ring drawn in proportion to its
    circumference (so the density along the rings is uniform), plus isotropic noise of std 0.02."""
    radii = torch.tensor(RING_RADII)
    k = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=generator)
    theta = torch.rand(n, generator=generator) * 2 * math.pi
    pts = radii[k, None] * torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    return pts + RING_NOISE * torch.randn(n, 2, generator=generator)


def wave(n: int, generator: torch.Generator) -> Tensor:
    """x ~ U(-3, 3), y = sin(2x), plus isotropic noise of std 0.03."""
    x = torch.rand(n, generator=generator) * 6 - 3
    pts = torch.stack([x, torch.sin(2 * x)], 1)
    return pts + WAVE_NOISE * torch.randn(n, 2, generator=generator)


def in_a_hole(x: Tensor) -> Tensor:
    """``(n, 2) -> (n,)`` bool: inside one of the five holes of :func:`holes`."""
    h = torch.tensor(HOLES, dtype=x.dtype)
    d2 = (x[:, None, :] - h[None, :, :2]).pow(2).sum(-1)  # (n, 5)
    return (d2 < h[:, 2].pow(2)).any(1)


def holes_area() -> float:
    """The area of the square less its holes (the holes do not overlap and lie inside the square)."""
    return (2 * HOLES_HALF_WIDTH) ** 2 - sum(math.pi * r * r for _, _, r in HOLES)


def holes(n: int, generator: torch.Generator) -> Tensor:
    """Uniform on the square [-2, 2]^2 less five disks (centre radius 0.6, four of radius 0.45 at
    (+-1.1, +-1.1)), drawn by rejection."""
    out: list[Tensor] = []
    have = 0
    while have < n:
        u = (torch.rand(2 * (n - have) + 16, 2, generator=generator) * 2 - 1) * HOLES_HALF_WIDTH
        keep = u[~in_a_hole(u)]
        out.append(keep)
        have += len(keep)
    return torch.cat(out)[:n]


def holes_log_prob(x: Tensor) -> Tensor:
    """log p of :func:`holes`: ``-log(area)`` on the support, ``-inf`` off it, ``(n, 2) -> (n,)``."""
    x = x.to(torch.float64)
    inside = (x.abs() <= HOLES_HALF_WIDTH).all(1) & ~in_a_hole(x)
    return torch.where(inside, torch.full_like(x[:, 0], -math.log(holes_area())), torch.full_like(x[:, 0], -math.inf))


def student(n: int, generator: torch.Generator) -> Tensor:
    """A 2-D Student t with 5 degrees of freedom, location 0, scale matrix L L^T with
    L = [[1, 0], [0.6, 0.8]] (unit marginal scales, correlation 0.6): x = L z / sqrt(g / 5), z ~ N(0, I),
    g ~ chi^2_5. Its tails fall as |x|^-7; moments exist up to the fourth, so W2 estimates converge."""
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    chi2 = torch.randn(n, int(STUDENT_DOF), generator=generator, dtype=torch.float64).pow(2).sum(1)
    lower = torch.tensor(STUDENT_SCALE, dtype=torch.float64)
    return ((z @ lower.T) / torch.sqrt(chi2 / STUDENT_DOF)[:, None]).float()


def student_log_prob(x: Tensor) -> Tensor:
    """log density of :func:`student`, ``(n, 2) -> (n,)`` float64."""
    nu, d = STUDENT_DOF, 2
    lower = torch.tensor(STUDENT_SCALE, dtype=torch.float64)
    y = torch.linalg.solve_triangular(lower, x.to(torch.float64).T, upper=False).T  # L^-1 x
    logdet = torch.log(torch.diagonal(lower)).sum()
    const = math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - d / 2 * math.log(nu * math.pi) - float(logdet)
    return const - (nu + d) / 2 * torch.log1p(y.pow(2).sum(1) / nu)


@cache
def many_modes(dim: int, modes: int, std: float, spread: float, seed: int) -> GaussianMixture:
    """Equal-weight isotropic Gaussians of std ``std`` at centres drawn once, N(0, spread^2 I), from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    means = spread * torch.randn(modes, dim, generator=g, dtype=torch.float64)
    covs = (std**2 * torch.eye(dim, dtype=torch.float64)).expand(modes, dim, dim).clone()
    return GaussianMixture(means, covs, torch.full((modes,), 1.0 / modes, dtype=torch.float64))


MIXTURES = {"gmm6": (6, 16, 0.25, 1.5, 6), "gmm10": (10, 32, 0.3, 1.5, 10)}  # dim, modes, std, spread, seed


def mixture_of(name: str) -> GaussianMixture:
    """The Gaussian mixture behind ``gmm6`` / ``gmm10``."""
    return many_modes(*MIXTURES[name])


def gmm6(n: int, generator: torch.Generator) -> Tensor:
    """16 equal-weight Gaussians in 6-D, std 0.25, centres N(0, 1.5^2 I) drawn once from seed 6."""
    return mixture_of("gmm6").sample(n, generator)


def gmm10(n: int, generator: torch.Generator) -> Tensor:
    """32 equal-weight Gaussians in 10-D, std 0.3, centres N(0, 1.5^2 I) drawn once from seed 10."""
    return mixture_of("gmm10").sample(n, generator)


SUITE = {"rings": rings, "wave": wave, "holes": holes, "student": student, "gmm6": gmm6, "gmm10": gmm10}


def suite_log_prob(name: str, x: Tensor) -> Tensor | None:
    """The exact log density of suite law ``name`` at ``x: (n, d)``, ``(n,)`` float64; None where unknown
    in closed form (the noisy rings and wave)."""
    if name == "holes":
        return holes_log_prob(x)
    if name == "student":
        return student_log_prob(x)
    if name in MIXTURES:
        return mixture_of(name).log_prob(x)
    return None
