"""A Gaussian mixture sum_k w_k N(mu_k, S_k) with given means and covariances: sampling and log density."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserError


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
