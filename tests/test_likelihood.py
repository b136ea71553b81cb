"""Exact log-likelihood through the probability-flow ODE, against closed-form densities."""

from __future__ import annotations

import math

import pytest
import torch

from noise2data.errors import UserError
from noise2data.likelihood import bits_per_dim, dequantize, log_likelihood
from noise2data.paths import make_path
from oracles import F64, MixtureOracle, two_blob_mixture

T_HI = 0.999  # VP's velocity is singular at t = 1 (d_sigma ~ 1/sqrt(1 - t)); stop just short


def oracle_prior(o: MixtureOracle):
    return lambda z: o.log_prob(z, torch.zeros(len(z), dtype=F64))


@pytest.mark.parametrize("solver,steps", [("rk4", 100), ("dopri5", 0)])
def test_log_density_of_a_mixture_is_exact_for_every_schedule(path, solver, steps):
    o = two_blob_mixture(path)
    x = o.sample_t(100, T_HI, torch.Generator().manual_seed(0))
    out = log_likelihood(o.velocity, x, path, solver=solver, steps=steps, t_hi=T_HI,
                         prior_log_prob=oracle_prior(o), rtol=1e-8, atol=1e-8)
    true = o.log_prob(x, torch.full((len(x),), T_HI, dtype=F64))
    assert (out.log_prob - true).abs().max() < 1e-3


def test_default_prior_is_exact_when_the_path_starts_at_pure_noise():
    # condot: p_0 = N(0, I) exactly, so no oracle prior is needed; 3-D Gaussian data in a (B, 3, 1) shape
    path = make_path("condot")
    o = MixtureOracle.gaussian(torch.tensor([0.5, -1.0, 2.0], dtype=F64), 0.7, path, shape=(3, 1))
    x = o.sample_data(64, torch.Generator().manual_seed(1))
    out = log_likelihood(o.velocity, x, path, solver="rk4", steps=80)
    assert (out.log_prob - o.log_prob(x, torch.ones(64, dtype=F64))).abs().max() < 1e-3
    # and the points land on the prior's scale: z = (x - mu) / 0.7 for a Gaussian
    assert torch.allclose(out.z.flatten(1), (x.flatten(1) - o.means[0]) / 0.7, atol=1e-4)


def test_accuracy_improves_with_the_solver_order():
    path = make_path("cosine")
    o = two_blob_mixture(path)
    x = o.sample_data(50, torch.Generator().manual_seed(2))
    true = o.log_prob(x, torch.ones(50, dtype=F64))
    err = {s: float((log_likelihood(o.velocity, x, path, solver=s, steps=8).log_prob - true).abs().max())
           for s in ("euler", "heun", "rk4")}
    assert err["rk4"] < err["heun"] < err["euler"]


def test_hutchinson_is_unbiased_for_both_probes(path):
    o = two_blob_mixture(path)
    x = o.sample_t(8, T_HI, torch.Generator().manual_seed(3))
    kw = dict(solver="rk4", steps=20, t_hi=T_HI, prior_log_prob=oracle_prior(o))
    exact = log_likelihood(o.velocity, x, path, **kw).log_prob
    for probe in ("rademacher", "gaussian"):
        g = torch.Generator().manual_seed(4)
        est = torch.stack([
            log_likelihood(o.velocity, x.repeat(50, 1), path, divergence="hutchinson", probe=probe,
                           generator=g, **kw).log_prob.view(50, 8)
        ]).view(50, 8)
        se = est.std(0) / math.sqrt(50)
        assert (est.std(0) > 1e-6).all()  # a real estimate, not the exact trace in disguise
        assert ((est.mean(0) - exact).abs() < 4.5 * se).all()


def test_hutchinson_costs_one_field_evaluation_per_stage_and_exact_the_same():
    path = make_path("condot")
    o = two_blob_mixture(path)
    x = o.sample_data(4, torch.Generator().manual_seed(0))
    for div in ("exact", "hutchinson"):
        out = log_likelihood(o.velocity, x, path, solver="heun", steps=10, divergence=div,
                             generator=torch.Generator().manual_seed(0))
        assert out.nfe == 20


def test_likelihood_runs_under_inference_mode():
    path = make_path("condot")
    o = MixtureOracle.gaussian(torch.zeros(2, dtype=F64), 1.0, path)
    with torch.inference_mode():
        x = torch.randn(5, 2, dtype=F64)
        out = log_likelihood(o.velocity, x, path, steps=40)
    assert torch.allclose(out.log_prob, o.log_prob(x.clone(), torch.ones(5, dtype=F64)), atol=1e-6)


def test_bits_per_dim_of_uniform_dequantisation():
    # A density uniform on [0, 256)^D in units of the grid has log p = -D log 256 per point:
    # exactly 8 bits per dimension with bin width 1.
    d = 10
    log_prob = torch.full((3,), -d * math.log(256.0))
    assert torch.allclose(bits_per_dim(log_prob, d, 1.0), torch.full((3,), 8.0))
    # the same data rescaled to [-1, 1]: the density gains D log(128) and the bins shrink by 1/128
    assert torch.allclose(bits_per_dim(log_prob + d * math.log(128.0), d, 1 / 128), torch.full((3,), 8.0))
    k = torch.randint(0, 256, (1000, 4))
    y = dequantize(k, bin_width=2 / 256, offset=-1.0, generator=torch.Generator().manual_seed(0))
    assert (y >= -1).all() and (y < 1).all()
    assert torch.equal(((y + 1) * 128).floor().long(), k)


def test_bad_input_is_named():
    path = make_path("condot")
    o = MixtureOracle.gaussian(torch.zeros(2, dtype=F64), 1.0, path)
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(UserError, match="unknown solver"):
        log_likelihood(o.velocity, x, path, solver="rk5")
    with pytest.raises(UserError, match="unknown divergence"):
        log_likelihood(o.velocity, x, path, divergence="trace")
    with pytest.raises(UserError, match="NaN"):
        log_likelihood(o.velocity, x * float("nan"), path)
    with pytest.raises(UserError, match="unknown probe"):
        log_likelihood(o.velocity, x, path, divergence="hutchinson", probe="bernoulli")
