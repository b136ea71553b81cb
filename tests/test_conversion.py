"""One conversion between velocity, noise, data and score: round trips in float64, and agreement
with the truth built from a known (x0, x1) pair, for every schedule and data shape."""

from __future__ import annotations

import itertools

import pytest
import torch

from noise2data.errors import UserError
from noise2data.paths import PREDICTIONS, GaussianPath, convert_prediction

SHAPES = [(7, 2), (3, 3, 8, 8), (4, 5, 3)]


def _truth(path: GaussianPath, shape, gen):
    x0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    x1 = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = torch.rand(shape[0], generator=gen, dtype=torch.float64) * 0.9 + 0.05
    s = path.sample(x1, t, x0)
    truth = {k: path.target(s, k) for k in PREDICTIONS}
    return s, truth


@pytest.mark.parametrize("shape", SHAPES)
def test_every_pair_matches_truth(path, shape, gen):
    s, truth = _truth(path, shape, gen)
    c = path.coeffs(s.t)
    for src, dst in itertools.product(PREDICTIONS, PREDICTIONS):
        out = convert_prediction(truth[src], s.x_t, c, src, dst)
        torch.testing.assert_close(out, truth[dst], rtol=1e-9, atol=1e-9, msg=f"{src}->{dst}")


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trips(path, shape, gen):
    s, _ = _truth(path, shape, gen)
    pred = torch.randn(shape, generator=gen, dtype=torch.float64)  # any prediction, not a truth
    for src, dst in itertools.product(PREDICTIONS, PREDICTIONS):
        back = path.convert(path.convert(pred, s.x_t, s.t, src, dst), s.x_t, s.t, dst, src)
        torch.testing.assert_close(back, pred, rtol=1e-8, atol=1e-8, msg=f"{src}->{dst}->{src}")


def test_unknown_prediction_is_refused(gen):
    path = GaussianPath.__new__(GaussianPath)
    with pytest.raises(UserError, match="unknown prediction 'eps'"):
        convert_prediction(torch.zeros(1, 2), torch.zeros(1, 2), None, "eps", "velocity")
    del path


def test_sampling_interval_avoids_singular_ends(path):
    for kind in PREDICTIONS:
        lo, hi = path.sampling_interval(kind)
        c = path.coeffs(torch.tensor([lo, hi], dtype=torch.float64))
        x = torch.ones(2, 2, dtype=torch.float64)
        if kind != "velocity":
            out = convert_prediction(x, x, c, kind, "velocity")
            assert torch.isfinite(out).all(), (kind, lo, hi)
    assert path.sampling_interval("velocity") == (0.0, 1.0)
