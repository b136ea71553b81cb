"""Debiased distances: 0 in expectation for equal laws, the closed form under a shift, honest intervals;
and the benchmark suite's laws (samplers against their stated law and density)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from noise2data.data import load_data, true_log_prob
from noise2data.data.suite import HOLES, RING_RADII, SUITE, holes_area, mixture_of
from noise2data.metrics import compare, energy_distance, energy_u, format_results, mmd2_u, with_interval


def gauss(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[:, 0] += shift
    return x


def mmd2_closed_form(shift: float, d: int, h: float) -> float:
    """MMD^2 between N(0, I) and N(shift e1, I) for k = exp(-|x - y|^2 / (2 h^2)):
    E k(X, Y) = (h^2 / (h^2 + 2))^(d/2) exp(-|mu_x - mu_y|^2 / (2 (h^2 + 2)))."""
    c = (h * h / (h * h + 2)) ** (d / 2)
    return 2 * c * (1 - math.exp(-shift**2 / (2 * (h * h + 2))))


def energy_closed_form_1d(shift: float) -> float:
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| for N(0, 1) and N(shift, 1) in 1-D, with E|Z| for
    Z ~ N(m, v) = sqrt(2v/pi) exp(-m^2 / 2v) + m (1 - 2 Phi(-m / sqrt v))."""
    def abs_mean(m: float, v: float) -> float:
        phi = 0.5 * (1 + math.erf(-m / math.sqrt(2 * v)))
        return math.sqrt(2 * v / math.pi) * math.exp(-m * m / (2 * v)) + m * (1 - 2 * phi)
    return 2 * abs_mean(shift, 2.0) - 2 * abs_mean(0.0, 2.0)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_mmd2_u_is_unbiased_against_the_closed_form(shift):
    d, h, n = 3, 1.5, 200
    vals = [mmd2_u(gauss(n, d, 0.0, 2 * i), gauss(n, d, shift, 2 * i + 1), scales=(1.0,), bandwidth=h)
            for i in range(40)]
    mean, se = statistics.mean(vals), statistics.stdev(vals) / math.sqrt(len(vals))
    assert abs(mean - mmd2_closed_form(shift, d, h)) < 4 * se + 1e-4
    if shift == 0.0:
        assert min(vals) < 0 < max(vals)  # a U-statistic, not a clipped V-statistic


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_energy_u_is_unbiased_and_the_v_statistic_is_not(shift):
    n = 150
    pairs = [(gauss(n, 1, 0.0, 2 * i), gauss(n, 1, shift, 2 * i + 1)) for i in range(40)]
    u = [energy_u(a, b) for a, b in pairs]
    mean, se = statistics.mean(u), statistics.stdev(u) / math.sqrt(len(u))
    truth = energy_closed_form_1d(shift)
    assert abs(mean - truth) < 4 * se + 1e-4
    if shift == 0.0:  # the V-statistic's bias is many standard errors above 0 at this n
        v = [energy_distance(a, b) for a, b in pairs]
        assert statistics.mean(v) > truth + 6 * se


def test_interval_covers_zero_for_equal_laws_and_not_for_a_shift():
    same = [with_interval(gauss(600, 4, 0.0, i), gauss(600, 4, 0.0, 100 + i), "energy_u", seed=i) for i in range(10)]
    covered = sum(lo <= 0.0 <= hi for _, lo, hi in same)
    assert covered >= 9
    value, lo, hi = with_interval(gauss(600, 4, 0.0, 7), gauss(600, 4, 0.8, 8), "mmd2_u")
    assert 0 < lo < value < hi


def test_compare_flags_noise_instead_of_better_than_data():
    """Under-dispersed samples in 6-D beat W2's floor ("better than data"); the debiased distance sees them."""
    ref, floor = load_data("gmm6", n=1500, seed=1), load_data("gmm6", n=1500, seed=2)
    shrunk = 0.85 * load_data("gmm6", n=1500, seed=3)
    res = compare(shrunk, ref, floor, metrics=["w2", "energy_u"])
    assert res["energy_u"].within_noise is False and res["energy_u"].ratio is None
    assert res["energy_u"].ci_low > 0
    table = format_results(res)
    assert "above noise" in table
    if res["w2"].value <= res["w2"].floor:
        assert res["w2"].within_noise and "within sampling noise" in table
    fair = compare(load_data("gmm6", n=1500, seed=4), ref, floor, metrics=["energy_u"])["energy_u"]
    assert fair.ci_low <= 0 <= fair.ci_high and fair.within_noise


# --- the suite ----------------------------------------------------------------------------------

def test_suite_is_reachable_by_name_with_seeded_draws():
    for name in SUITE:
        a, b = load_data(name, n=500, seed=3), load_data(name, n=500, seed=3)
        assert a.dtype == torch.float32 and a.ndim == 2 and torch.equal(a, b)
        assert torch.isfinite(a).all()
    assert load_data("gmm6", n=10).shape == (10, 6) and load_data("gmm10", n=10).shape == (10, 10)


def test_rings_and_holes_follow_their_law():
    x = load_data("rings", n=4000, seed=0).double()
    r = x.norm(dim=1)
    nearest = (r[:, None] - torch.tensor(RING_RADII, dtype=torch.float64)).abs().min(1).values
    assert nearest.quantile(0.99) < 0.07  # radial noise 0.02: 3.5 sd
    share = torch.stack([((r - rad).abs() < 0.1).double().mean() for rad in RING_RADII])
    assert torch.allclose(share, torch.tensor(RING_RADII, dtype=torch.float64) / sum(RING_RADII), atol=0.03)
    h = load_data("holes", n=4000, seed=0)
    for cx, cy, rad in HOLES:
        assert ((h - torch.tensor([cx, cy])).norm(dim=1) >= rad).all()
    assert (h.abs() <= 2).all()
    # the density integrates to one: the support's area times exp(log p)
    assert math.isclose(holes_area() * math.exp(float(true_log_prob("holes", h[:1]))), 1.0, rel_tol=1e-9)


def test_student_and_mixture_densities_match_their_samples():
    """Monte Carlo: E_p[1/p] over a box = its area, for the exact density (heavy tails included)."""
    x = load_data("student", n=20000, seed=0).double()
    cov = torch.cov(x.T)
    assert torch.allclose(cov, torch.tensor([[1.0, 0.6], [0.6, 1.0]], dtype=torch.float64) * 5 / 3, atol=0.2)
    grid = torch.stack(torch.meshgrid(torch.linspace(-30, 30, 601), torch.linspace(-30, 30, 601),
                                      indexing="ij"), -1).reshape(-1, 2)
    mass = float(true_log_prob("student", grid).exp().sum()) * 0.1**2
    assert abs(mass - 1.0) < 2e-3
    m = mixture_of("gmm6")
    y = load_data("gmm6", n=20000, seed=1).double()
    assert torch.allclose(y.mean(0), m.means.mean(0), atol=0.05)
    entropy_mc = -float(true_log_prob("gmm6", y).mean())
    assert 0 < entropy_mc < 6 * (0.5 * math.log(2 * math.pi * math.e * 0.25**2) + 2)
