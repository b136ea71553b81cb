"""Toy 2-D distributions generated in code, and Gaussian mixtures with given means/covariances.

Every sampler takes ``n`` and a ``torch.Generator`` and returns float32 ``(n, 2)`` (a mixture:
``(n, d)``), so datasets are reproducible from a seed and need no download.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserError

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


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k w_k N(mu_k, S_k) in d dimensions.

    Args:
        means: ``(K, d)``. covs: ``(K, d, d)`` symmetric positive definite. weights: ``(K,)``
        nonnegative (normalised here); all uniform when omitted.
    """

    means: Tensor
    covs: Tensor
    weights: Tensor

    @classmethod
    def from_lists(cls, means, covs, weights=None) -> GaussianMixture:
        """Build and validate from nested lists (e.g. a JSON file)."""
        try:
            m = torch.as_tensor(means, dtype=torch.float64)
            c = torch.as_tensor(covs, dtype=torch.float64)
            w = torch.ones(len(m), dtype=torch.float64) if weights is None else torch.as_tensor(
                weights, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise UserError(f"Gaussian mixture: means/covs/weights must be numeric lists ({exc})") from None
        if m.ndim != 2:
            raise UserError(f"Gaussian mixture means must be (K, d), got shape {tuple(m.shape)}")
        k, d = m.shape
        if c.shape != (k, d, d):
            raise UserError(f"Gaussian mixture covs must be (K, d, d) = ({k}, {d}, {d}), got {tuple(c.shape)}")
        if w.shape != (k,) or (w < 0).any() or w.sum() <= 0:
            raise UserError(f"Gaussian mixture weights must be {k} nonnegative numbers with a positive sum")
        if not torch.allclose(c, c.transpose(1, 2)) or (torch.linalg.eigvalsh(c) <= 0).any():
            raise UserError("Gaussian mixture covs must be symmetric positive definite")
        return cls(m, c, w / w.sum())

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, d)`` float32 draws."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], 1, generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)
        return (self.means[k] + (chol[k] @ z).squeeze(-1)).float()

    def log_prob(self, x: Tensor) -> Tensor:
        """log density at ``x: (n, d)``, ``(n,)`` in float64."""
        dist = torch.distributions.MultivariateNormal(self.means, covariance_matrix=self.covs)
        lp = dist.log_prob(x.to(torch.float64)[:, None, :])  # (n, K)
        return torch.logsumexp(lp + self.weights.log(), dim=1)


TOY_DATASETS: dict[str, Sampler] = {
    "checkerboard": checkerboard,
    "moons": moons,
    "circles": circles,
    "8gaussians": eight_gaussians,
    "spirals": spirals,
}


def sample_toy(name: str, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws from a toy distribution by name, ``(n, 2)`` float32."""
    if name not in TOY_DATASETS:
        raise UserError(f"unknown toy dataset '{name}': expected one of {', '.join(TOY_DATASETS)}")
    return TOY_DATASETS[name](n, generator)
