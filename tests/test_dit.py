"""The DiT: shapes, patch layout, adaLN-Zero start, positions, conditioning, learning, size errors."""

from __future__ import annotations

import pytest
import torch

from noise2data.errors import UserError
from noise2data.models import DiT, DiTConfig
from noise2data.models.dit import sincos_positions


@pytest.mark.parametrize("shape,patch", [((1, 8, 8), 2), ((1, 28, 28), 4), ((3, 12, 16), 4)])
@pytest.mark.parametrize("positions", ["sincos", "learned"])
def test_shapes_and_zero_start(shape, patch, positions):
    m = DiT(DiTConfig(data_shape=shape, patch=patch, hidden=32, depth=2, heads=4, positions=positions,
                      num_classes=3))
    x = torch.randn(5, *shape)
    out = m(x, torch.rand(5), torch.tensor([0, 1, 2, 3, 1]))  # 3: the null label
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # adaLN-Zero and a zero output layer


def test_patches_are_put_back_where_they_came_from():
    """With the blocks at their zero-gated start, each output patch depends on its own input patch only."""
    torch.manual_seed(0)
    m = DiT(DiTConfig(data_shape=(2, 8, 12), patch=4, hidden=32, depth=1, heads=2))
    for lin in (m.out, m.ada_out):
        torch.nn.init.normal_(lin.weight, std=0.2)
    x, t = torch.randn(1, 2, 8, 12), torch.rand(1)
    base = m(x, t)
    x2 = x.clone()
    x2[0, 1, 5, 9] += 3.0  # a pixel in the patch at row 1, column 2
    changed = (m(x2, t) - base).abs().amax(dim=1)[0] > 1e-6  # (H, W)
    expect = torch.zeros(8, 12, dtype=torch.bool)
    expect[4:8, 8:12] = True
    assert torch.equal(changed, expect)


def test_sincos_positions_are_distinct_and_bounded():
    pos = sincos_positions(64, 7, 7)
    assert pos.shape == (49, 64) and pos.abs().max() <= 1
    assert torch.cdist(pos, pos).add(torch.eye(49) * 10).min() > 0.1  # no two tokens share a position


@pytest.mark.parametrize("kwargs,message", [
    ({"data_shape": (1, 28, 28), "patch": 3}, r"patch size 3 must divide the image size 28x28: use one of \[1, 2, 4"),
    ({"data_shape": (2, 8)}, "takes images"),
    ({"data_shape": (1, 8, 8), "hidden": 30, "heads": 4}, "hidden divisible by heads"),
    ({"data_shape": (1, 8, 8), "positions": "rope"}, "unknown DiT positions"),
    ({"data_shape": (1, 8, 8), "num_classes": 2, "cond_dim": 3}, "not both"),
])
def test_config_errors_say_what_fits(kwargs, message):
    with pytest.raises(UserError, match=message):
        DiT(DiTConfig(**kwargs))


def test_wrong_image_size_and_unknown_preset():
    m = DiT(DiTConfig(data_shape=(1, 8, 8), patch=2, hidden=32, depth=1))
    with pytest.raises(UserError, match=r"expects images of shape \(1, 8, 8\)"):
        m(torch.randn(2, 1, 16, 16), torch.rand(2))
    with pytest.raises(UserError, match="unknown DiT preset"):
        DiTConfig.preset("huge", (1, 8, 8))
