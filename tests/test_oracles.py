"""The oracles themselves: score = grad log p_t, and (p_t, u_t) solve the continuity equation."""

from __future__ import annotations

import torch

from oracles import two_blob_mixture


def test_score_is_gradient_of_log_density(path, gen):
    orc = two_blob_mixture(path)
    x = torch.randn(16, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.rand(16, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    (g,) = torch.autograd.grad(orc.log_prob(x, t).sum(), x)
    torch.testing.assert_close(orc.score(x.detach(), t), g, rtol=1e-8, atol=1e-10)


def test_continuity_equation(path, gen):
    """d/dt p_t + div(p_t u_t) = 0, i.e. d/dt log p = -div u - u . grad log p."""
    orc = two_blob_mixture(path)
    x = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(8, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    h = 1e-5
    dlogp_dt = (orc.log_prob(x, t + h) - orc.log_prob(x, t - h)) / (2 * h)
    div = torch.zeros(8, dtype=torch.float64)
    for i in range(2):
        e = torch.zeros_like(x)
        e[:, i] = h
        div += (orc.velocity(x + e, t) - orc.velocity(x - e, t))[:, i] / (2 * h)
    rhs = -div - (orc.velocity(x, t) * orc.score(x, t)).sum(1)
    torch.testing.assert_close(dlogp_dt, rhs, rtol=1e-5, atol=1e-5)
