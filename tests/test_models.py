"""The MLP: any data shape, time dependence, labels, configs that rebuild it."""

from __future__ import annotations

import math

import pytest
import torch

from noise2data.errors import UserError
from noise2data.models import MLP, FourierEmbedding, MLPConfig, SinusoidalEmbedding, build_model


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8), (5, 3)])
@pytest.mark.parametrize("emb", ["sinusoidal", "fourier"])
def test_mlp_shapes_and_time_dependence(shape, emb):
    torch.manual_seed(0)
    m = MLP(MLPConfig(data_shape=shape, hidden=32, depth=2, time_embedding=emb))
    torch.nn.init.normal_(m.out.weight)  # the output layer starts at zero; make it bite
    x = torch.randn(4, *shape)
    y0, y1 = m(x, torch.zeros(4)), m(x, torch.full((4,), 0.5))
    assert y0.shape == x.shape and not torch.allclose(y0, y1)


def test_untrained_model_predicts_zero():
    m = MLP(MLPConfig(data_shape=(2,), hidden=16, depth=1))
    assert m(torch.randn(3, 2), torch.rand(3)).abs().max() == 0


def test_class_conditioning_and_null_label():
    torch.manual_seed(0)
    m = MLP(MLPConfig(data_shape=(2,), hidden=16, depth=1, num_classes=3))
    torch.nn.init.normal_(m.out.weight)
    x, t = torch.randn(3, 2), torch.rand(3)
    a = m(x, t, torch.tensor([0, 0, 0]))
    b = m(x, t, torch.tensor([1, 1, 1]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(m(x, t), m(x, t, torch.tensor([3, 3, 3])))  # None = null class


def test_embeddings_distinguish_times():
    for emb in (SinusoidalEmbedding(32), FourierEmbedding(32)):
        e = emb(torch.linspace(0, 1, 50))
        assert e.shape == (50, 32)
        d = torch.cdist(e, e) + torch.eye(50)
        assert d.min() > 1e-3  # distinct times, distinct embeddings


def test_x_octaves_are_sines_and_cosines_of_the_coordinates():
    """x_octaves K: the first layer sees [x, sin(pi 2^k x), cos(pi 2^k x)] (k < K) and nothing else changes."""
    m = MLP(MLPConfig(data_shape=(2,), x_octaves=3))
    x = torch.tensor([[0.25, -1.0]])
    f = m.features(x)
    assert f.shape == (1, 2 * 7) and m.inp.in_features == 14
    k = torch.tensor([1.0, 2.0, 4.0]) * math.pi
    torch.testing.assert_close(f[0, 2:8], torch.sin(torch.cat([0.25 * k, -1.0 * k])))
    torch.testing.assert_close(f[0, 8:], torch.cos(torch.cat([0.25 * k, -1.0 * k])))
    plain = MLP(MLPConfig(data_shape=(2,)))
    assert torch.equal(plain.features(x), x) and plain.inp.in_features == 2
    with pytest.raises(UserError, match="x_octaves"):
        MLPConfig(data_shape=(2,), x_octaves=-1)


def test_config_round_trip_and_errors():
    cfg = MLPConfig(data_shape=(3, 4), hidden=8, depth=2)
    m = build_model(cfg.to_dict())
    assert m.config == cfg
    with pytest.raises(UserError, match="unknown model"):
        build_model({"name": "transformer", "data_shape": [2]})
    with pytest.raises(UserError, match="time embedding"):
        MLPConfig(data_shape=(2,), time_embedding="learned")
    with pytest.raises(UserError, match="expects samples of shape"):
        m(torch.randn(2, 4, 3), torch.rand(2))
    with pytest.raises(UserError, match="without a condition"):
        m(torch.randn(2, 3, 4), torch.rand(2), torch.tensor([0, 1]))
