"""Losses: one value per sample; the exact marginal quantities minimise them."""

from __future__ import annotations

import math

import pytest
import torch

from noise2data.errors import UserError
from noise2data.losses import (
    TimeDistribution,
    denoising_score_matching_loss,
    flow_matching_loss,
    prediction_loss,
)
from noise2data.paths import GaussianPath, make_schedule
from oracles import two_blob_mixture


def _draw(path, n, gen):
    orc = two_blob_mixture(path)
    x1 = orc.sample_data(n, gen)
    t = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    return orc, path.sample(x1, t, generator=gen)


def _directional_derivative(loss_of_c, n):
    """d/dc E[loss(c)] at c = 0, from per-sample losses (quadratic in c: exact by symmetry),
    and its Monte Carlo standard error."""
    per = (loss_of_c(1e-3) - loss_of_c(-1e-3)) / 2e-3  # (B,)
    return per.mean(), per.std() / math.sqrt(n)


@pytest.mark.parametrize("kind", ["velocity", "noise"])
def test_exact_marginal_field_is_the_minimiser(path, gen, kind):
    n = 400_000
    orc, s = _draw(path, n, gen)
    exact = orc.velocity(s.x_t, s.t) if kind == "velocity" else orc.noise(s.x_t, s.t)
    h = torch.sin(s.x_t) + s.t[:, None]  # an arbitrary direction in function space
    if kind == "velocity":
        def loss(c):
            return flow_matching_loss(exact + c * h, s, path)
    else:
        def loss(c):
            return denoising_score_matching_loss(exact + c * h, s, path, "noise")
    grad, se = _directional_derivative(loss, n)
    assert abs(grad) < 4 * se, (grad, se)
    # and moving away raises the loss by c^2 E|h|^2 / d (no linear term)
    c = 0.3
    gain = (loss(c) - loss(0.0)).mean()
    expected = c**2 * h.pow(2).mean()
    assert abs(gain - expected) < 6 * se * c + 0.02 * expected


def test_perturbed_field_has_nonzero_gradient(gen):
    """The check above can fail: a wrong field (the conditional mean of a different path) fails it."""
    path = GaussianPath(make_schedule("condot"))
    n = 200_000
    orc, s = _draw(path, n, gen)
    wrong = orc.velocity(s.x_t, s.t) + 0.2 * torch.sin(s.x_t)
    h = torch.sin(s.x_t)
    grad, se = _directional_derivative(lambda c: flow_matching_loss(wrong + c * h, s, path), n)
    assert abs(grad) > 20 * se


def test_score_and_noise_losses_agree(path, gen):
    _, s = _draw(path, 1000, gen)
    eps_hat = torch.randn_like(s.x0)
    score_hat = path.convert(eps_hat, s.x_t, s.t, "noise", "score")
    torch.testing.assert_close(
        denoising_score_matching_loss(score_hat, s, path, "score"),
        denoising_score_matching_loss(eps_hat, s, path, "noise"),
    )


@pytest.mark.parametrize("kind", ["velocity", "noise", "data", "score"])
def test_losses_are_per_sample(kind, gen):
    path = GaussianPath(make_schedule("cosine"))
    x1 = torch.randn(5, 3, 4, 4, generator=gen)
    s = path.sample(x1, torch.rand(5, generator=gen) * 0.9, generator=gen)
    loss = prediction_loss(torch.zeros_like(x1), s, path, kind)
    assert loss.shape == (5,) and torch.isfinite(loss).all()
    with pytest.raises(UserError):
        denoising_score_matching_loss(x1, s, path, "velocity")


def test_time_distributions(gen):
    u = TimeDistribution("uniform").sample(100_000, generator=gen)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    ln = TimeDistribution("logit_normal", mean=0.5, std=1.0).sample(100_000, generator=gen)
    assert ln.min() > 0 and ln.max() < 1
    assert abs(ln.median() - 1 / (1 + math.exp(-0.5))) < 0.01  # the median is sigmoid(mean)
    with pytest.raises(UserError, match="unknown time distribution"):
        TimeDistribution("gamma")
