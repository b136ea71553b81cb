"""What the U-Net and the DiT share: presets that round-trip, conditioning, sample independence, learning."""

from __future__ import annotations

import pytest
import torch

from noise2data.models import DiT, DiTConfig, UNet, UNetConfig, build_model
from noise2data.models.attention import self_attention
from noise2data.models.dit import PRESETS as DIT_PRESETS
from noise2data.models.unet import PRESETS as UNET_PRESETS

MODELS = {
    "dit": lambda **kw: DiT(DiTConfig(data_shape=(1, 8, 8), patch=2, hidden=64, depth=2, heads=4, **kw)),
    "unet": lambda **kw: UNet(UNetConfig(data_shape=(1, 8, 8), base_channels=16, channel_mults=(1, 2), **kw)),
}


@pytest.mark.parametrize("cls,cfg_cls,presets", [(UNet, UNetConfig, UNET_PRESETS), (DiT, DiTConfig, DIT_PRESETS)],
                         ids=["unet", "dit"])
def test_every_preset_builds_and_round_trips_through_its_config(cls, cfg_cls, presets):
    for name in presets:
        cfg = cfg_cls.preset(name, (1, 32, 32), num_classes=10)
        m = build_model(cfg.to_dict())
        assert isinstance(m, cls) and m.config == cfg


@pytest.mark.parametrize("name", MODELS)
def test_time_and_labels_change_the_output_and_samples_stay_independent(name):
    torch.manual_seed(0)
    m = MODELS[name](num_classes=2)
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


def fit_denoiser(m: torch.nn.Module, pattern: torch.Tensor, steps: int) -> list[float]:
    """Train ``m`` to predict the clean ``pattern: (1, 1, 8, 8)`` from noisy copies; the losses."""
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        x = pattern + 0.5 * torch.randn(16, 1, 8, 8)
        loss = (m(x, torch.rand(16)) - pattern).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", MODELS)
def test_it_learns_a_denoising_target(name):
    torch.manual_seed(0)
    pattern = torch.zeros(1, 1, 8, 8)
    pattern[..., 2:6, 2:6] = 1.0
    losses = fit_denoiser(MODELS[name](), pattern, 80)
    assert sum(losses[-10:]) / 10 < 0.2 * sum(losses[:3]) / 3


def test_a_space_to_depth_stem_still_draws_single_pixel_detail():
    """A 2x2 U-Net stem folds pixels into channels; the output must unfold them to the same places, so a
    one-pixel checkerboard (invisible to any per-block average) is learnt as well as without a stem."""
    pattern = torch.zeros(1, 1, 8, 8)
    pattern[..., 2:6, 2:6] = 1.0
    pattern[..., ::2, ::2] *= -1.0  # one-pixel detail: flips sign on every other pixel of even rows
    final = {}
    for patch in (1, 2):
        torch.manual_seed(0)
        m = UNet(UNetConfig(data_shape=(1, 8, 8), patch=patch, base_channels=16, channel_mults=(1, 2)))
        fit_denoiser(m, pattern, 100)
        with torch.no_grad():
            final[patch] = (m(pattern + 0.5 * torch.randn(64, 1, 8, 8), torch.rand(64)) - pattern).pow(2).mean()
    assert final[2] < 0.1 * pattern.pow(2).mean()  # 90% of the pattern's energy is drawn
    assert final[2] < 3 * final[1]


@pytest.mark.parametrize("heads", [1, 4])
def test_attention_is_multihead_attention_written_out(heads):
    """Both models' attention computes what the ``nn.MultiheadAttention`` holding its weights computes."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, heads, batch_first=True)
    seq = torch.randn(3, 35, 32, requires_grad=True)
    ref, _ = mha(seq, seq, seq, need_weights=False)
    out = self_attention(mha, seq)
    assert torch.allclose(out, ref, atol=1e-5)
    g_ref, = torch.autograd.grad(ref.square().sum(), seq)
    g_out, = torch.autograd.grad(out.square().sum(), seq)
    assert torch.allclose(g_out, g_ref, atol=1e-4)
