"""The DiT: shapes, patch layout, adaLN-Zero start, positions, conditioning, learning, size errors."""

from __future__ import annotations

import pytest
import torch

from noise2data.errors import UserError
from noise2data.models import DiT, DiTConfig, UNet, UNetConfig, build_model
from noise2data.models.dit import PRESETS, sincos_positions


@pytest.mark.parametrize("shape,patch", [((1, 8, 8), 2), ((1, 28, 28), 4), ((3, 12, 16), 4)])
@pytest.mark.parametrize("positions", ["sincos", "learned"])
def test_shapes_and_zero_start(shape, patch, positions):
    m = DiT(DiTConfig(data_shape=shape, patch=patch, hidden=32, depth=2, heads=4, positions=positions,
                      num_classes=3))
    x = torch.randn(5, *shape)
    out = m(x, torch.rand(5), torch.tensor([0, 1, 2, 3, 1]))  # 3: the null label
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # adaLN-Zero and a zero output layer


def test_every_preset_builds_and_round_trips_through_its_config():
    for name in PRESETS:
        cfg = DiTConfig.preset(name, (1, 32, 32), num_classes=10)
        m = build_model(cfg.to_dict())
        assert isinstance(m, DiT) and m.config == cfg


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


@pytest.mark.parametrize("make", [
    lambda: DiT(DiTConfig(data_shape=(1, 8, 8), patch=2, hidden=32, depth=2, heads=4, num_classes=2)),
    lambda: UNet(UNetConfig(data_shape=(1, 8, 8), base_channels=16, num_classes=2)),
], ids=["dit", "unet"])
def test_time_and_labels_change_the_output_and_samples_stay_independent(make):
    torch.manual_seed(0)
    m = make()
    for p in m.parameters():  # leave the zero initialisation behind
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 1, 8, 8)
    base = m(x, torch.full((2,), 0.3), torch.tensor([0, 0]))
    assert not torch.allclose(base, m(x, torch.full((2,), 0.7), torch.tensor([0, 0])))
    assert not torch.allclose(base, m(x, torch.full((2,), 0.3), torch.tensor([1, 1])))
    # samples do not talk to each other: the first output ignores the second input
    x2 = x.clone()
    x2[1] += 1
    assert torch.allclose(base[0], m(x2, torch.full((2,), 0.3), torch.tensor([0, 0]))[0], atol=1e-5)


def test_it_learns_a_denoising_target():
    torch.manual_seed(0)
    m = DiT(DiTConfig(data_shape=(1, 8, 8), patch=2, hidden=64, depth=2, heads=4))
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    pattern = torch.zeros(1, 1, 8, 8)
    pattern[..., 2:6, 2:6] = 1.0
    losses = []
    for _ in range(80):
        x = pattern + 0.5 * torch.randn(16, 1, 8, 8)
        loss = (m(x, torch.rand(16)) - pattern).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.2 * sum(losses[:3]) / 3


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
