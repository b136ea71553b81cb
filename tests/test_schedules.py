"""Schedules: exact derivatives (against autograd), boundary values, parsing."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import SCHEDULE_NAMES
from noise2data.errors import UserError
from noise2data.paths import make_schedule, parse_schedule
from noise2data.paths.schedules import schedule_spec


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_derivatives_match_autograd(name):
    sched = make_schedule(name)
    t = torch.linspace(0.01, 0.99, 37, dtype=torch.float64, requires_grad=True)
    out = sched(t)
    for value, deriv in ((out.alpha, out.d_alpha), (out.sigma, out.d_sigma)):
        if not value.requires_grad:  # a constant (VE's alpha): its derivative must be zero
            assert (deriv == 0).all()
            continue
        (g,) = torch.autograd.grad(value.sum(), t, retain_graph=True)
        torch.testing.assert_close(deriv, g, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["condot", "cosine", "polynomial"])
def test_noise_to_data_boundaries(name):
    out = make_schedule(name)(torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out.alpha, torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out.sigma, torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-15, rtol=0)


def test_vp_is_variance_preserving_with_ddpm_endpoints():
    s = make_schedule("vp", beta_min=0.1, beta_max=20.0)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    out = s(t)
    torch.testing.assert_close(out.alpha**2 + out.sigma**2, torch.ones_like(t))
    assert out.alpha[-1] == 1.0 and out.sigma[-1] == 0.0
    assert math.isclose(out.alpha[0].item(), math.exp(-0.5 * (0.1 + 0.5 * 19.9)), rel_tol=1e-12)


def test_ve_geometric_sigma():
    s = make_schedule("ve", sigma_min=0.01, sigma_max=10.0)
    out = s(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out.sigma, torch.tensor([10.0, math.sqrt(0.1), 0.01], dtype=torch.float64))
    assert (out.alpha == 1).all() and (out.d_alpha == 0).all()


def test_parse_and_spec_round_trip():
    s = parse_schedule("ve:sigma_max=10,sigma_min=0.02")
    assert schedule_spec(s) == {"name": "ve", "sigma_min": 0.02, "sigma_max": 10.0}
    assert make_schedule(**schedule_spec(s)) == s


@pytest.mark.parametrize(
    "spec, words",
    [("warp", "unknown schedule 'warp'"), ("ve:sigma_mx=3", "no parameter 'sigma_mx'"),
     ("ve:sigma_max=abc", "key=number"), ("polynomial:n=-1", "n > 0"),
     ("vp:beta_min=5,beta_max=1", "beta_min <= beta_max")],
)
def test_bad_schedules_teach(spec, words):
    with pytest.raises(UserError, match=words):
        parse_schedule(spec)
