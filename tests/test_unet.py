"""The U-Net: shapes, presets, conditioning, starting at zero, learning, and clear size errors."""

from __future__ import annotations

import pytest
import torch

from noise2data.errors import UserError
from noise2data.models import UNet, UNetConfig


@pytest.mark.parametrize("patch", [1, 2])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 12)])
def test_shapes_and_zero_start(shape, patch):
    m = UNet(UNetConfig(data_shape=shape, patch=patch, base_channels=16, channel_mults=(1, 2), num_classes=3))
    x, t = torch.randn(5, *shape), torch.rand(5)
    out = m(x, t, torch.tensor([0, 1, 2, 3, 1]))  # 3 is the null label
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # the output layer starts at zero


@pytest.mark.parametrize("kwargs,message", [
    ({"data_shape": (2,)}, r"images \(C, H, W\)"),
    ({"data_shape": (1, 28, 28), "channel_mults": (1, 2, 2, 2)}, "divisible by 8"),
    ({"data_shape": (1, 8, 8), "base_channels": 12}, "multiple of 8"),
    ({"data_shape": (1, 28, 28), "patch": 2, "channel_mults": (1, 2, 2)}, "after a 2x2 stem needs H and W .* by 8"),
    ({"data_shape": (1, 8, 8), "patch": 0}, "patch must be >= 1"),
])
def test_sizes_that_do_not_fit_are_named(kwargs, message):
    with pytest.raises(UserError, match=message):
        UNetConfig(**kwargs)
    with pytest.raises(UserError, match="unknown U-Net preset"):
        UNetConfig.preset("huge", (1, 8, 8))
    m = UNet(UNetConfig(data_shape=(1, 8, 8), base_channels=16))
    with pytest.raises(UserError, match="expects images of shape"):
        m(torch.zeros(2, 1, 16, 16), torch.zeros(2))

