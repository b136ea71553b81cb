"""Closed-form truths: the marginal velocity, score and density of a Gaussian path
when p_data is a Gaussian mixture, sum_k w_k N(mu_k, S_k).

Under x_t = alpha x1 + sigma x0 with x0 ~ N(0, I), component k of p_t is N(alpha mu_k, C_k) with
C_k = alpha^2 S_k + sigma^2 I, and given x_t and k the pair (x1, x0) is Gaussian with

    E[x1 | x, k] = mu_k + alpha S_k C_k^{-1} (x - alpha mu_k)
    E[x0 | x, k] = sigma C_k^{-1} (x - alpha mu_k)

so the marginal velocity is sum_k gamma_k(x) (d_alpha E[x1|x,k] + d_sigma E[x0|x,k]) with
posterior weights gamma_k, and the score is -sum_k gamma_k C_k^{-1} (x - alpha mu_k). Everything
is in float64 and works for data of any shape (flattened to d = prod(D)). The tests check samplers,
losses and likelihoods against it; `benchmarks/recipe.py` uses it to separate a solver's error from
a model's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .gaussian import GaussianPath

F64 = torch.float64


class MixtureOracle:
    """Exact quantities of a Gaussian path whose data law is a Gaussian mixture.

    Args:
        means: ``(K, d)``; covs: ``(K, d, d)`` positive definite; weights: ``(K,)`` summing to 1.
        path: the Gaussian path.
        shape: the data shape ``D`` with ``prod(D) = d`` (defaults to ``(d,)``).
    """

    def __init__(self, means: Tensor, covs: Tensor, weights: Tensor, path: GaussianPath,
                 shape: tuple[int, ...] | None = None) -> None:
        self.means = means.to(F64)
        self.covs = covs.to(F64)
        self.weights = weights.to(F64) / weights.sum()
        self.path = path
        self.d = self.means.shape[1]
        self.shape = shape or (self.d,)
        assert math.prod(self.shape) == self.d

    @classmethod
    def from_mixture(cls, mixture, path: GaussianPath) -> MixtureOracle:  # noqa: ANN001 - data.GaussianMixture
        """The oracle of a :class:`noise2data.data.GaussianMixture`."""
        return cls(mixture.means, mixture.covs, mixture.weights, path)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        """The oracle as a velocity field, ``field(x, t)``."""
        return self.velocity(x, t)

    @classmethod
    def gaussian(cls, mean: Tensor, std: float, path: GaussianPath, shape=None) -> MixtureOracle:
        """A single isotropic Gaussian N(mean, std^2 I)."""
        d = mean.numel()
        return cls(mean.reshape(1, d), (std**2 * torch.eye(d, dtype=F64))[None], torch.ones(1),
                   path, shape)

    # --- data law -------------------------------------------------------------------------
    def data_mean(self) -> Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def data_cov(self) -> Tensor:
        m = self.data_mean()
        dm = self.means - m
        return (self.weights[:, None, None] * (self.covs + dm[:, :, None] * dm[:, None, :])).sum(0)

    def sample_t(self, n: int, t: float, generator: torch.Generator) -> Tensor:
        """Exact draws from p_t, ``(n, *D)`` float64."""
        c = self.path.coeffs(torch.tensor([t], dtype=F64))
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self._component_covs(c)[0])  # (K, d, d)
        z = torch.randn(n, self.d, 1, generator=generator, dtype=F64)
        x = c.alpha * self.means[k] + (chol[k] @ z).squeeze(-1)
        return x.reshape(n, *self.shape)

    def sample_data(self, n: int, generator: torch.Generator) -> Tensor:
        """Exact draws from p_data, ``(n, *D)`` float64 (the data covs must be nonsingular)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)
        z = torch.randn(n, self.d, 1, generator=generator, dtype=F64)
        return (self.means[k] + (chol[k] @ z).squeeze(-1)).reshape(n, *self.shape)

    # --- marginal quantities ------------------------------------------------------------
    def _component_covs(self, c) -> Tensor:
        a2 = (c.alpha**2)[:, None, None, None]  # (B, 1, 1, 1)
        s2 = (c.sigma**2)[:, None, None, None]
        eye = torch.eye(self.d, dtype=F64)
        return a2 * self.covs[None] + s2 * eye  # (B, K, d, d)

    def _posterior(self, x: Tensor, t: Tensor):
        xf = x.reshape(x.shape[0], self.d).to(F64)
        c = self.path.coeffs(t.to(F64))
        C = self._component_covs(c)  # (B, K, d, d)
        r = xf[:, None, :] - c.alpha[:, None, None] * self.means[None]  # (B, K, d)
        Cinv_r = torch.linalg.solve(C, r[..., None]).squeeze(-1)  # (B, K, d)
        logdet = torch.linalg.slogdet(C)[1]  # (B, K)
        logp_k = -0.5 * ((r * Cinv_r).sum(-1) + logdet + self.d * math.log(2 * math.pi))
        logp_k = logp_k + self.weights.log()[None]
        gamma = torch.softmax(logp_k, dim=1)  # (B, K)
        return c, r, Cinv_r, gamma, torch.logsumexp(logp_k, dim=1)

    def log_prob(self, x: Tensor, t: Tensor) -> Tensor:
        """log p_t(x), ``(B,)``."""
        return self._posterior(x, t)[4]

    def score(self, x: Tensor, t: Tensor) -> Tensor:
        """grad log p_t(x), ``(B, *D)``."""
        _, _, Cinv_r, gamma, _ = self._posterior(x, t)
        return -(gamma[..., None] * Cinv_r).sum(1).reshape(x.shape).to(x.dtype)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """The marginal velocity u_t(x), ``(B, *D)``."""
        c, _, Cinv_r, gamma, _ = self._posterior(x, t)
        e1 = self.means[None] + c.alpha[:, None, None] * (self.covs[None] @ Cinv_r[..., None]).squeeze(-1)
        e0 = c.sigma[:, None, None] * Cinv_r
        v_k = c.d_alpha[:, None, None] * e1 + c.d_sigma[:, None, None] * e0
        return (gamma[..., None] * v_k).sum(1).reshape(x.shape).to(x.dtype)

    def noise(self, x: Tensor, t: Tensor) -> Tensor:
        """E[x0 | x_t = x], ``(B, *D)``."""
        c, _, Cinv_r, gamma, _ = self._posterior(x, t)
        e0 = c.sigma[:, None, None] * Cinv_r
        return (gamma[..., None] * e0).sum(1).reshape(x.shape).to(x.dtype)
