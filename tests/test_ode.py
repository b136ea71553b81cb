"""ODE samplers: declared convergence order, and sampling with the exact field reproduces p_data."""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest
import torch

from noise2data.errors import UserError
from noise2data.samplers import ODE_SOLVERS, ORDERS, TABLEAUX, edm_grid, integrate, make_grid, refine_grid, uniform_grid
from oracles import two_blob_mixture


def _known_problem(x, t):
    """dx/dt = cos(2 pi t) x + t  has no closed form we need: we use dx/dt = cos(t) x instead."""
    return torch.cos(t)[:, None] * x


@pytest.mark.parametrize("method", list(TABLEAUX))
def test_declared_convergence_order(method):
    x0 = torch.tensor([[1.0], [-0.5]], dtype=torch.float64)
    exact = x0 * math.exp(math.sin(1.0))  # x(t) = x0 exp(sin t)
    steps = [16, 32, 64, 128]
    errs = []
    for n in steps:
        out = integrate(_known_problem, x0, uniform_grid(n), method=method)
        errs.append((out.x - exact).abs().max().item())
        assert out.nfe == n * TABLEAUX[method].stages
    slope = np.polyfit(np.log([1 / n for n in steps]), np.log(errs), 1)[0]
    assert abs(slope - ORDERS[method]) < 0.2, (method, slope, errs)


def test_dopri5_meets_tolerance_and_reports_nfe():
    x0 = torch.tensor([[1.0], [-0.5]], dtype=torch.float64)
    out = ODE_SOLVERS["dopri5"](_known_problem, x0, uniform_grid(1), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.x, x0 * math.exp(math.sin(1.0)), rtol=1e-7, atol=1e-8)
    assert 6 <= out.nfe < 500 and out.nfe % 6 in (0, 1, 2)


def test_backward_integration_inverts_forward():
    x0 = torch.randn(5, 3, dtype=torch.float64)
    ts = uniform_grid(40)
    fwd = integrate(_known_problem, x0, ts, method="rk4").x
    back = integrate(_known_problem, fwd, ts.flip(0), method="rk4").x
    torch.testing.assert_close(back, x0, rtol=1e-7, atol=1e-8)


def _grid(path, name, steps):
    if path.schedule.name == "ve":
        return edm_grid(path, steps)
    # the VP field has d_sigma = -inf at t = 1 exactly; stop just short of it
    return uniform_grid(steps, 0.0, 1.0 - 1e-4 if name == "vp" else 1.0)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun", "rk4", "dopri5"])
def test_exact_field_transports_to_data(path, solver, gen):
    """Integrating the exact marginal field from p_0 reproduces p_data's mean and covariance."""
    orc = two_blob_mixture(path)
    n = 4000
    x0 = orc.sample_t(n, 0.0, gen)
    steps = {"euler": 400, "midpoint": 60, "heun": 60, "rk4": 30, "dopri5": 1}[solver]
    out = ODE_SOLVERS[solver](orc.velocity, x0, _grid(path, path.schedule.name, steps))
    # compare with exact moments, within 5 standard errors of a sample of n
    cov = orc.data_cov()
    se_mean = (cov.diagonal() / n).sqrt()
    assert ((out.x.mean(0) - orc.data_mean()).abs() < 5 * se_mean).all()
    se_cov = cov.diagonal().max() * math.sqrt(2 / n)
    assert ((out.x.T.cov() - cov).abs() < 5 * se_cov).all(), out.x.T.cov()


def test_exact_field_w2_near_noise_floor(gen):
    """Heun on the exact CondOT field: W2 to fresh data is at the noise floor of two data samples."""
    ot = pytest.importorskip("ot")
    from noise2data.paths import GaussianPath, make_schedule

    orc = two_blob_mixture(GaussianPath(make_schedule("condot")))
    n = 1500
    x = integrate(orc.velocity, orc.sample_t(n, 0.0, gen), uniform_grid(40), method="heun").x

    def w2(a, b):
        return math.sqrt(ot.emd2([], [], ot.dist(a.numpy(), b.numpy())))

    ref = orc.sample_data(n, gen)
    floors = [w2(orc.sample_data(n, gen), orc.sample_data(n, gen)) for _ in range(3)]
    assert w2(x, ref) < 1.3 * max(floors), (w2(x, ref), floors)


def test_trajectory_shapes_and_memory():
    x = torch.randn(4, 3, 2)
    out = integrate(lambda x, t: -x, x, uniform_grid(10), method="heun", trajectory=True)
    assert out.trajectory.shape == (11, 4, 3, 2) and out.times.shape == (11,)
    torch.testing.assert_close(out.trajectory[-1], out.x)
    # without a trajectory, no state the field produced outlives its step
    alive = []

    def field(x, t):
        v = -x
        alive.append(weakref.ref(v))
        return v

    out = integrate(field, x, uniform_grid(200), method="rk4")
    assert out.trajectory is None
    assert sum(r() is not None for r in alive) == 0


def test_bad_solver_inputs():
    with pytest.raises(UserError, match="unknown ODE method 'rk5'"):
        integrate(lambda x, t: x, torch.zeros(2, 2), uniform_grid(2), method="rk5")
    with pytest.raises(UserError, match="positive integer"):
        uniform_grid(0)
    with pytest.raises(UserError, match=r"\(B, \*D\)"):
        integrate(lambda x, t: x, torch.zeros(2), uniform_grid(2))


def test_edm_grid_follows_rho_spacing(path):
    ts = edm_grid(path, 10, rho=7.0, sigma_max=80.0, sigma_min=0.002)
    assert ts[0] == 0 and ts[-1] == 1 and (ts.float().diff() > 0).all()  # increasing even in float32
    sig = path.noise_to_signal(ts[1:-1])  # the inner points follow EDM's formula in sigma
    smax = min(path.noise_to_signal(ts[:1]).item(), 80.0)
    smin = max(path.noise_to_signal(ts[-1:]).item(), 0.002)
    i = torch.arange(1, 10, dtype=torch.float64) / 10
    expected = (smax ** (1 / 7) + i * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    torch.testing.assert_close(sig, expected, rtol=1e-9, atol=1e-12)


def test_refine_grid_steps_once_to_nearly_the_data_and_spreads_the_rest_there(path):
    torch.testing.assert_close(refine_grid(2), torch.tensor([0.0, 0.99, 1.0], dtype=torch.float64))
    ts = make_grid("refine", path, 4, 0.0, 0.999)  # a data-prediction run's interval
    assert ts[0] == 0 and ts[-1] == 0.999 and (ts.diff() > 0).all()
    torch.testing.assert_close(ts[1:], torch.linspace(0.99 * 0.999, 0.999, 4, dtype=torch.float64))
    torch.testing.assert_close(refine_grid(1, 0.2, 0.9), uniform_grid(1, 0.2, 0.9))  # one step: the ends
    with pytest.raises(UserError, match="fraction in"):
        refine_grid(2, first=1.0)
    with pytest.raises(UserError, match="positive integer"):
        refine_grid(0)


@pytest.mark.parametrize("schedule", ["condot", "cosine"])
def test_midpoint_beats_heun_at_equal_evaluations(schedule, gen):
    """Why midpoint is the default sampler: with the exact field (no model error), at 4, 8 and 16 evaluations
    the midpoint rule lands closer to the exact ODE solution than Heun's trapezoid. Along a trajectory the
    field's change in time dominates, and for quadrature the midpoint rule's error constant (1/24) is half
    the trapezoid's (1/12)."""
    from noise2data.paths import make_path

    path = make_path(schedule)
    orc = two_blob_mixture(path)
    x0 = orc.sample_t(500, 0.0, gen)
    exact = ODE_SOLVERS["dopri5"](orc.velocity, x0, uniform_grid(1), rtol=1e-10, atol=1e-10).x
    for nfe in (4, 8, 16):
        err = {s: (ODE_SOLVERS[s](orc.velocity, x0, uniform_grid(nfe // 2)).x - exact).norm(dim=1).mean()
               for s in ("midpoint", "heun")}
        assert err["midpoint"] < 0.8 * err["heun"], (nfe, err)


def test_one_heun_step_keeps_half_the_noise(gen):
    """Why Heun is useless in one step (FID 202 on MNIST): with independent pairs the exact field is
    E[x1] - x at t = 0 and x at t = 1 (at the data end x0 is independent of x_t), so Euler's one step lands
    on the data mean and the trapezoid's correction adds back half the start: x0 / 2 + E[x1]."""
    from noise2data.paths import make_path

    orc = two_blob_mixture(make_path("condot"))
    x0 = orc.sample_t(200, 0.0, gen)
    mean = orc.data_mean()  # E[x1], (2,)
    torch.testing.assert_close(ODE_SOLVERS["euler"](orc.velocity, x0, uniform_grid(1)).x, mean.expand_as(x0))
    torch.testing.assert_close(ODE_SOLVERS["heun"](orc.velocity, x0, uniform_grid(1)).x, 0.5 * x0 + mean)
