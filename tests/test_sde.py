"""SDE samplers: the SDE extension keeps the marginals for any diffusion; Langevin converges."""

from __future__ import annotations

import math

import pytest
import torch

from noise2data.errors import UserError
from noise2data.fields import velocity_to_score
from noise2data.paths import GaussianPath, make_schedule
from noise2data.samplers import (
    constant_diffusion,
    euler_maruyama,
    langevin,
    sde_drift,
    uniform_grid,
)
from oracles import MixtureOracle, two_blob_mixture


def _assert_moments(x, mean, cov, n, k=5.0):
    se_mean = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mean).abs() < k * se_mean).all(), (x.mean(0), mean)
    se_cov = cov.diagonal().max() * math.sqrt(2 / n)
    assert ((x.T.cov() - cov).abs() < k * se_cov + 0.01 * cov.abs().max()).all(), (x.T.cov(), cov)


@pytest.mark.parametrize("g", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("schedule", ["condot", "cosine"])
def test_sde_extension_reproduces_data_for_every_diffusion(schedule, g, gen):
    path = GaussianPath(make_schedule(schedule))
    orc = two_blob_mixture(path)
    n = 4000
    diff = constant_diffusion(g)
    drift = sde_drift(orc.velocity, diff, score=orc.score)
    out = euler_maruyama(drift, orc.sample_t(n, 0.0, gen), uniform_grid(250), diffusion=diff,
                         generator=gen)
    assert out.nfe == 250
    _assert_moments(out.x, orc.data_mean(), orc.data_cov(), n)


def test_time_varying_diffusion(gen):
    """g(t) = 2 (1 - t): strong noise early, none at the end; the marginals are still kept."""
    path = GaussianPath(make_schedule("condot"))
    orc = two_blob_mixture(path)
    n = 4000

    def diff(t):
        return 2.0 * (1 - t)

    out = euler_maruyama(sde_drift(orc.velocity, diff, score=orc.score), orc.sample_t(n, 0.0, gen),
                         uniform_grid(250), diffusion=diff, generator=gen)
    _assert_moments(out.x, orc.data_mean(), orc.data_cov(), n)


def test_intermediate_marginals_match(gen):
    """At an intermediate time the SDE's law is p_t, not only at the end."""
    path = GaussianPath(make_schedule("condot"))
    orc = two_blob_mixture(path)
    n = 4000
    diff = constant_diffusion(1.5)
    drift = sde_drift(orc.velocity, diff, path=path)  # score derived from the velocity
    out = euler_maruyama(drift, orc.sample_t(n, 0.0, gen), uniform_grid(200, 0.0, 0.5),
                         diffusion=diff, generator=gen, noise_last_step=True)
    c = path.coeffs(torch.tensor([0.5], dtype=torch.float64))
    cov = c.alpha**2 * orc.data_cov() + c.sigma**2 * torch.eye(2, dtype=torch.float64)
    _assert_moments(out.x, c.alpha * orc.data_mean(), cov, n)


def test_derived_score_equals_exact_score(path, gen):
    orc = two_blob_mixture(path)
    x = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    torch.testing.assert_close(velocity_to_score(orc.velocity, path)(x, t), orc.score(x, t))


def test_langevin_converges_to_a_gaussian(gen):
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)

    def score(x, t):
        return -(x - mean) @ prec

    n = 8000
    out = langevin(score, torch.randn(n, 2, generator=gen, dtype=torch.float64), step_size=0.01,
                   n_steps=1500, generator=gen)
    # unadjusted Langevin's stationary covariance is cov + O(step): allow 2 %
    _assert_moments(out.x, mean, cov, n)


def test_reproducible_with_generator():
    orc = MixtureOracle.gaussian(torch.zeros(2), 0.5, GaussianPath(make_schedule("condot")))
    diff = constant_diffusion(1.0)
    drift = sde_drift(orc.velocity, diff, score=orc.score)
    x = torch.zeros(10, 2, dtype=torch.float64)
    a = euler_maruyama(drift, x, uniform_grid(20), diffusion=diff,
                       generator=torch.Generator().manual_seed(3)).x
    b = euler_maruyama(drift, x, uniform_grid(20), diffusion=diff,
                       generator=torch.Generator().manual_seed(3)).x
    assert torch.equal(a, b)


def test_bad_sde_inputs():
    with pytest.raises(UserError, match=">= 0"):
        constant_diffusion(-1.0)
    with pytest.raises(UserError, match="must increase"):
        euler_maruyama(lambda x, t: x, torch.zeros(2, 2), uniform_grid(3).flip(0),
                       diffusion=constant_diffusion(1.0))
    with pytest.raises(UserError, match="step_size"):
        langevin(lambda x, t: x, torch.zeros(2, 2), step_size=0.0, n_steps=3)
