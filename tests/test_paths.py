"""The Gaussian path: x_t, conditional velocity and score, and the marginals it induces."""

from __future__ import annotations

import math

import pytest
import torch

from oracles import two_blob_mixture


@pytest.mark.parametrize("shape", [(64, 2), (8, 3, 4, 4), (16, 6, 3)])
def test_conditional_quantities(path, shape, gen):
    x1 = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = torch.rand(shape[0], generator=gen, dtype=torch.float64) * 0.9 + 0.05
    s = path.sample(x1, t, generator=gen)
    c = path.coeffs(t)
    bshape = (-1,) + (1,) * (len(shape) - 1)
    torch.testing.assert_close(s.x_t, c.alpha.view(bshape) * x1 + c.sigma.view(bshape) * s.x0)
    # u_t(x_t | x1) evaluated on the sample is the flow-matching target
    torch.testing.assert_close(path.conditional_velocity(s.x_t, x1, t), path.target(s, "velocity"))
    # the conditional score is grad log N(x; alpha x1, sigma^2 I)
    x = s.x_t.clone().requires_grad_(True)
    logp = -0.5 * ((x - c.alpha.view(bshape) * x1) ** 2 / c.sigma.view(bshape) ** 2).sum()
    (g,) = torch.autograd.grad(logp, x)
    torch.testing.assert_close(path.conditional_score(s.x_t, x1, t), g)
    torch.testing.assert_close(path.target(s, "score"), g)


def test_marginal_moments_match_oracle(path, gen):
    """Pushing exact data samples through the path gives p_t's mean and covariance."""
    orc = two_blob_mixture(path)
    n = 200_000
    x1 = orc.sample_data(n, gen)
    for t in (0.2, 0.7):
        s = path.sample(x1, torch.full((n,), t, dtype=torch.float64), generator=gen)
        c = path.coeffs(torch.tensor([t], dtype=torch.float64))
        mean = c.alpha * orc.data_mean()
        cov = c.alpha**2 * orc.data_cov() + c.sigma**2 * torch.eye(2, dtype=torch.float64)
        scale = math.sqrt(cov.diagonal().max())
        torch.testing.assert_close(s.x_t.mean(0), mean, atol=5 * scale / math.sqrt(n), rtol=0)
        # the standard error of a sample covariance entry is at most ~ var * sqrt(2 / n)
        torch.testing.assert_close(s.x_t.T.cov(), cov, atol=5 * scale**2 * math.sqrt(2 / n), rtol=0)


def test_prior_std_and_sample_prior(path, gen):
    x = path.sample_prior((50_000, 2), generator=gen, dtype=torch.float64)
    expected = float(path.coeffs(torch.zeros(1, dtype=torch.float64)).sigma)
    assert math.isclose(x.std().item(), expected, rel_tol=0.02)
