"""DPM-Solver++ (2M, 3M) and UniPC (2, 3) on the Gaussian-mixture oracle: convergence order, the exact
marginal at the end, one evaluation per step; the log-SNR grid; budgets of evaluations (--nfe)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noise2data.errors import UserError
from noise2data.likelihood import log_likelihood
from noise2data.paths import make_path
from noise2data.samplers import ODE_SOLVERS, logsnr_grid, make_grid, solver_steps_for_nfe, uniform_grid
from noise2data.samplers.multistep import exp_moments, exp_weights, phi
from oracles import two_blob_mixture


def test_phi_matches_quadrature():
    for h in (1e-6, 0.1, 1.0, 7.0):
        v = torch.linspace(0, h, 200_001, dtype=torch.float64)
        for k, a in enumerate(phi(h)):
            f = (h - v) ** k * torch.exp(-v)
            assert math.isclose(float(torch.trapezoid(f, v)), a, rel_tol=1e-6, abs_tol=1e-15), (h, k)


def test_exp_moments_and_weights_match_quadrature():
    """The moments int_0^h u^j e^{u-h} du on both sides of the series/recurrence switch (h = 1), and the
    weights integrate every polynomial through the nodes exactly (here a cubic through 4 nodes)."""
    for h in (1e-4, 0.3, 1.0, 1.0001, 2.5, 9.0):
        u = torch.linspace(0, h, 400_001, dtype=torch.float64)
        for j, m in enumerate(exp_moments(h, 3)):
            assert math.isclose(float(torch.trapezoid(u ** j * torch.exp(u - h), u)), m, rel_tol=1e-6), (h, j)
        nodes = [-1.3 * h, -0.4 * h, 0.0, h]
        poly = lambda v: 0.5 - 2.0 * v + 0.7 * v ** 2 + 0.3 * v ** 3  # noqa: E731
        exact = float(torch.trapezoid(poly(u) * torch.exp(u - h), u))
        weights = exp_weights(nodes, h)
        quad = sum(w * poly(torch.tensor(n, dtype=torch.float64)) for w, n in zip(weights, nodes, strict=True))
        assert math.isclose(float(quad), exact, rel_tol=1e-6, abs_tol=1e-12), h


@pytest.mark.parametrize("schedule", ["condot", "vp", "cosine"])
@pytest.mark.parametrize("solver", ["unipc2", "unipc3"])
def test_unipc_corrector_raises_the_order(schedule, solver):
    """UniPC's corrector re-uses the next step's evaluation: still one per step, and the global error
    falls faster than h^2 (about h^3 for unipc2, h^3 to h^4 for unipc3; DPM-Solver++ is h^2)."""
    path = make_path(schedule)
    orc = two_blob_mixture(path)
    x0 = orc.sample_t(50, 0.2, torch.Generator().manual_seed(0))
    exact = ODE_SOLVERS["dopri5"](orc.velocity, x0, torch.tensor([0.2, 0.8], dtype=torch.float64),
                                  rtol=1e-12, atol=1e-12).x
    steps, errs = [8, 16, 32, 64], []
    for n in steps:
        out = ODE_SOLVERS[solver](orc.velocity, x0, uniform_grid(n, 0.2, 0.8), path=path)
        assert out.nfe == n
        errs.append((out.x - exact).abs().max().item())
    slope = np.polyfit(np.log([1 / n for n in steps]), np.log(errs), 1)[0]
    assert slope > 2.5, (slope, errs)
    predictor = ODE_SOLVERS["dpm++" + solver[-1] + "m"](orc.velocity, x0, uniform_grid(64, 0.2, 0.8), path=path)
    assert errs[-1] < 0.5 * (predictor.x - exact).abs().max().item()  # the same steps without the corrector


@pytest.mark.parametrize("schedule", ["condot", "vp", "cosine"])
@pytest.mark.parametrize("solver", ["dpm++2m", "dpm++3m"])
def test_second_order_convergence_on_the_oracle(schedule, solver):
    """Global error against a tight dopri5 solution on [0.2, 0.8] falls as h^2 or faster (3M's first two steps,
    without history, are of order 1 and 2, so a run from scratch is second order overall)."""
    path = make_path(schedule)
    orc = two_blob_mixture(path)
    x0 = orc.sample_t(50, 0.2, torch.Generator().manual_seed(0))
    span = torch.tensor([0.2, 0.8], dtype=torch.float64)
    exact = ODE_SOLVERS["dopri5"](orc.velocity, x0, span, rtol=1e-11, atol=1e-11).x
    steps, errs = [8, 16, 32, 64], []
    for n in steps:
        out = ODE_SOLVERS[solver](orc.velocity, x0, uniform_grid(n, 0.2, 0.8), path=path)
        assert out.nfe == n  # one network evaluation per step
        errs.append((out.x - exact).abs().max().item())
    slope = np.polyfit(np.log([1 / n for n in steps]), np.log(errs), 1)[0]
    assert slope > 1.8, (slope, errs)


@pytest.mark.parametrize("solver", ["dpm++2m", "dpm++3m", "unipc2", "unipc3"])
def test_exact_field_from_pure_noise_reaches_the_data_law(solver, gen):
    """From t = 0 (alpha = 0, lambda = -inf) to t = 1 (sigma = 0): the infinite end steps are handled and
    the samples have the data's mean and covariance."""
    path = make_path("condot")
    orc = two_blob_mixture(path)
    n = 4000
    out = ODE_SOLVERS[solver](orc.velocity, orc.sample_t(n, 0.0, gen), uniform_grid(48), path=path)
    assert torch.isfinite(out.x).all()
    cov = orc.data_cov()
    assert ((out.x.mean(0) - orc.data_mean()).abs() < 5 * (cov.diagonal() / n).sqrt()).all()
    assert ((out.x.T.cov() - cov).abs() < 5 * cov.diagonal().max() * math.sqrt(2 / n)).all()


def test_multistep_beats_euler_at_equal_evaluations(gen):
    path = make_path("condot")
    orc = two_blob_mixture(path)
    x0 = orc.sample_t(500, 0.0, gen)
    exact = ODE_SOLVERS["dopri5"](orc.velocity, x0, uniform_grid(1), rtol=1e-10, atol=1e-10).x
    err = {s: (ODE_SOLVERS[s](orc.velocity, x0, uniform_grid(16), path=path).x - exact).norm(dim=1).mean()
           for s in ("euler", "dpm++2m")}
    assert err["dpm++2m"] < 0.25 * err["euler"], err


def test_logsnr_grid_is_uniform_in_log_snr():
    path = make_path("condot")
    ts = logsnr_grid(path, 10)
    assert ts[0] == 0 and ts[-1] == 1 and (ts.diff() > 0).all()
    lam = torch.log(path.noise_to_signal(ts[1:-1]))
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(8), atol=1e-6)
    torch.testing.assert_close(make_grid("logsnr", path, 10), ts)


def test_multistep_errors_teach():
    path = make_path("condot")
    orc = two_blob_mixture(path)
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(UserError, match="need the probability path"):
        ODE_SOLVERS["dpm++2m"](orc.velocity, x, uniform_grid(4))
    with pytest.raises(UserError, match="grid must increase"):
        ODE_SOLVERS["dpm++2m"](orc.velocity, x, uniform_grid(4).flip(0), path=path)
    with pytest.raises(UserError, match="cannot integrate the likelihood"):
        log_likelihood(orc.velocity, x, path, solver="dpm++2m")


def test_nfe_budgets():
    assert solver_steps_for_nfe("midpoint", 8) == 4
    assert solver_steps_for_nfe("rk4", 8) == 2
    assert solver_steps_for_nfe("euler", 8) == 8
    assert solver_steps_for_nfe("dpm++2m", 8) == 8
    assert solver_steps_for_nfe("unipc2", 5) == 5
    with pytest.raises(UserError, match=r"heun spends 2 evaluations per step.*multiple of 2 \(2, 4, 6, 8"):
        solver_steps_for_nfe("heun", 7)
    with pytest.raises(UserError, match="multiple of 4"):
        solver_steps_for_nfe("rk4", 6)
    with pytest.raises(UserError, match="dopri5 chooses its own steps"):
        solver_steps_for_nfe("dopri5", 8)
    with pytest.raises(UserError, match="positive integer"):
        solver_steps_for_nfe("euler", 0)
    assert solver_steps_for_nfe("rk4", 6, strict=False) is None
