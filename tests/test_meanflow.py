"""MeanFlow: the target against the closed-form average velocity of a Gaussian, jump models, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noise2data.errors import UserError
from noise2data.meanflow import MeanFlowConfig, draw_interval, guided_velocity, meanflow_loss, meanflow_target
from noise2data.models import build_model
from noise2data.paths import make_path
from noise2data.paths.oracle import MixtureOracle
from noise2data.samplers import mean_flow_jumps, uniform_grid
from noise2data.training import TrainConfig, train

MU, S = 1.5, 0.5  # data N(MU, S^2 I) on the condot path: x_t = t x1 + (1 - t) x0


def _m(t):  # (B,) -> mean of p_t
    return t * MU


def _s(t):  # std of p_t
    return (t**2 * S**2 + (1 - t) ** 2).sqrt()


def true_u(x, t, r):
    """The exact average velocity over [t, r] from x: the flow map is affine, x_r = m_r + s_r / s_t (x - m_t)."""
    x_r = _m(r)[:, None] + (_s(r) / _s(t))[:, None] * (x - _m(t)[:, None])
    return (x_r - x) / (r - t)[:, None]


def true_v(x, t):
    ds = (t * S**2 - (1 - t)) / _s(t)
    return MU + (ds / _s(t))[:, None] * (x - _m(t)[:, None])


@pytest.mark.parametrize("mode,tol", [("forward", 1e-10), ("backward", 1e-10), ("fd", 1e-5)])
def test_target_is_the_true_average_velocity_on_a_gaussian(mode, tol):
    """The identity u = v + (r - t) du/dt holds for the exact u, and fails for a wrong one."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = 0.8 * torch.rand(64, generator=g, dtype=torch.float64)
    r = t + (1 - t) * torch.rand(64, generator=g, dtype=torch.float64)
    target = meanflow_target(lambda xx, tt: true_u(xx, tt, r), x, t, r, true_v(x, t), mode)
    assert (target - true_u(x, t, r)).abs().max() < tol
    # the instantaneous velocity in place of u is not a fixed point: the target moves away from it
    wrong = meanflow_target(lambda xx, tt: true_v(xx, tt), x, t, r, true_v(x, t), mode)
    assert (wrong - true_v(x, t)).abs().max() > 0.05


def test_the_true_average_velocity_has_zero_loss_and_a_wrong_one_does_not():
    """The whole loss path (rows with r = t and r > t, the teacher's velocity) on the Gaussian's exact fields."""

    class Exact(nn.Module):
        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale

        def forward(self, x, t, cond=None, r=None):
            r = t if r is None else r
            same = (r - t).abs() < 1e-12
            u = true_u(x, t, torch.where(same, t + 1e-3, r))
            return self.scale * torch.where(same[:, None], true_v(x, t), u)

    class Teacher(nn.Module):
        def forward(self, x, t, cond=None):
            return true_v(x, t)

    path = make_path("condot")
    g = torch.Generator().manual_seed(1)
    x1 = MU + S * torch.randn(256, 2, generator=g, dtype=torch.float64)
    t, r = draw_interval(TrainConfig().time_dist, MeanFlowConfig(ratio=0.5), 256, g, "cpu", torch.float64)
    t, r = 0.9 * t, 0.9 * r  # keep away from t = 1, where the closed form divides by ~0
    assert (r > t).float().mean().item() == pytest.approx(0.5, abs=0.1) and bool((r >= t).all())
    sample = path.sample(x1, t, torch.randn(256, 2, generator=g, dtype=torch.float64))
    cfg = MeanFlowConfig(power=0.0, ratio=0.5)
    assert meanflow_loss(Exact(), sample, r, path, cfg, teacher=Teacher()).max() < 1e-12
    assert meanflow_loss(Exact(1.1), sample, r, path, cfg, teacher=Teacher()).mean() > 1e-3


@pytest.mark.parametrize("name,cfg", [
    ("mlp", {"data_shape": [2]}),
    ("unet", {"data_shape": [1, 8, 8], "channel_mults": [1, 2], "base_channels": 16}),
    ("dit", {"data_shape": [1, 8, 8], "patch": 2, "hidden": 32, "heads": 2, "depth": 1}),
    ("egnn", {"max_atoms": 4, "hidden": 16, "layers": 1}),
    ("video-unet", {"data_shape": [3, 1, 8, 8], "base_channels": 16}),
])
def test_every_model_becomes_a_jump_model_that_starts_as_its_flow_model(name, cfg):
    flow, jump = build_model({"name": name, **cfg}), build_model({"name": name, **cfg, "mean_flow": True})
    for p in flow.parameters():
        p.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(p.numel()))
    missing = jump.load_state_dict(flow.state_dict(), strict=False).missing_keys
    assert missing and all("gap" in k for k in missing)
    x = torch.randn(3, *jump.config.data_shape)
    t = torch.rand(3)
    assert torch.allclose(jump(x, t, None, torch.ones(3)), flow(x, t), atol=1e-6)
    # the gap embedding is trainable: a jump model's output depends on r once it is not zero
    for p in jump.parameters():
        p.data.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    assert not torch.allclose(jump(x, t, None, t), jump(x, t, None, torch.ones(3)))
    with pytest.raises(UserError, match="takes no end time r"):
        flow(x, t, None, torch.ones(3))
    # MeanFlow's target differentiates through the model by forward-mode AD: every layer supports it
    from noise2data.meanflow import total_derivative

    d = total_derivative(lambda xx, tt: jump(xx, tt, None, torch.ones(3)), x, t, torch.randn_like(x))
    assert d.shape == x.shape and bool(torch.isfinite(d).all())


def test_baked_guidance_moves_only_rows_with_a_label():
    class Fake(nn.Module):
        config = type("C", (), {"num_classes": 3, "cond_dim": 0})()

        def forward(self, x, t, cond=None):
            return torch.full_like(x, -1.0)  # the "unconditional" velocity

    v = torch.ones(4, 2)
    cond = torch.tensor([0, 3, 1, 3])  # 3 is the null label
    out = guided_velocity(v, torch.zeros(4, 2), torch.rand(4), cond, 2.0, Fake())
    assert torch.equal(out[[0, 2]], torch.full((2, 2), 3.0))  # 2 * 1 + (1 - 2) * (-1)
    assert torch.equal(out[[1, 3]], v[[1, 3]])


class OracleTeacher(nn.Module):
    """A Gaussian mixture's exact marginal velocity as a frozen flow model."""

    def __init__(self, oracle: MixtureOracle):
        super().__init__()
        self.oracle = oracle

    def forward(self, x, t, cond=None):
        return self.oracle.velocity(x.double(), t.double()).to(x.dtype)


def _gmm_oracle():
    means = torch.tensor([[-1.2, -1.2], [-1.2, 1.2], [1.2, -1.2], [1.2, 1.2]])
    covs = 0.09 * torch.eye(2).expand(4, 2, 2)
    return MixtureOracle(means, covs, torch.ones(4), make_path("condot"))


def test_one_jump_lands_within_1_5x_the_w2_floor_on_a_gaussian_mixture():
    """A jump MLP distilled from the exact field of a 2-D mixture: one evaluation, W2 <= 1.5x the floor.

    W2 between two samples of 3000 points varies by +-20 % from draw to draw, so the floor is the mean over
    four real samples and the model's value the mean over two noise draws.
    """
    from noise2data.metrics import w2_exact

    torch.manual_seed(0)
    oracle = _gmm_oracle()
    data = oracle.sample_data(20000, torch.Generator().manual_seed(0)).float()
    model = build_model({"name": "mlp", "data_shape": [2], "hidden": 128, "depth": 3, "time_embedding": "smooth",
                         "mean_flow": True})
    cfg = TrainConfig(steps=1200, batch_size=256, objective="meanflow", device="cpu", log_every=200,
                      mean_flow={"power": 0.0, "ratio": 0.75})
    ema = train(model, oracle.path, data, cfg, teacher=OracleTeacher(oracle), progress=False).ema.eval()
    ref = oracle.sample_data(3000, torch.Generator().manual_seed(1)).float()
    floor = sum(w2_exact(oracle.sample_data(3000, torch.Generator().manual_seed(s)).float(), ref)
                for s in (2, 3, 4, 5)) / 4
    values = []
    for seed in (7, 8):
        x0 = torch.randn(3000, 2, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            values.append(w2_exact(mean_flow_jumps(lambda x, t, r=None: ema(x, t, None, r), x0, uniform_grid(1)).x,
                                   ref))
    assert sum(values) / 2 <= 1.5 * floor, (values, floor)
    # and it is a real sample of the mixture, not a blur: every mode gets close to its quarter
    x = mean_flow_jumps(lambda x, t, r=None: ema(x, t, None, r), x0, uniform_grid(1)).x.detach()
    nearest = torch.cdist(x, oracle.means.float()).argmin(1)
    assert torch.bincount(nearest, minlength=4).float().div(len(x)).sub(0.25).abs().max() < 0.05


def _run(tmp_path, steps, *, resume=False, interrupt_at=None, monkeypatch=None):
    import noise2data.training.loop as loop

    torch.manual_seed(0)
    oracle = _gmm_oracle()
    data = oracle.sample_data(2000, torch.Generator().manual_seed(0)).float()
    model = build_model({"name": "mlp", "data_shape": [2], "hidden": 32, "depth": 2, "time_embedding": "smooth",
                         "mean_flow": True})
    cfg = TrainConfig(steps=steps, batch_size=64, objective="meanflow", device="cpu", checkpoint_every=10,
                      log_every=10, mean_flow={"ratio": 0.5})
    if interrupt_at is not None:
        real, calls = loop.training_step_loss, {"n": 0}
        monkeypatch.setenv("NOISE2DATA_NO_MEMORY_CHECK", "1")  # count training steps only, not the memory probe

        def interrupted(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == interrupt_at:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(loop, "training_step_loss", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(model, oracle.path, data, cfg, run_dir=tmp_path, progress=False)
        monkeypatch.setattr(loop, "training_step_loss", real)
        model = build_model(model.config.to_dict() | {"name": "mlp"})
    return train(model, oracle.path, data, cfg, run_dir=tmp_path, progress=False, resume=resume).model


def test_meanflow_training_resumes_bit_exactly(tmp_path, monkeypatch):
    straight = _run(tmp_path / "a", 30)
    resumed = _run(tmp_path / "b", 30, resume=True, interrupt_at=16, monkeypatch=monkeypatch)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_the_three_derivatives_agree_on_a_network():
    from noise2data.meanflow import total_derivative

    torch.manual_seed(0)
    m = build_model({"name": "mlp", "data_shape": [2], "mean_flow": True, "time_embedding": "smooth", "hidden": 32,
                     "depth": 2})
    for p in m.parameters():
        p.data.normal_(0, 0.2)
    x, t, v = torch.randn(8, 2), 0.5 * torch.rand(8), torch.randn(8, 2)
    r = t + 0.3
    d = {k: total_derivative(lambda xx, tt: m(xx, tt, None, r), x, t, v, k) for k in ("forward", "backward", "fd")}
    assert d["forward"].abs().max() > 0.05
    torch.testing.assert_close(d["backward"], d["forward"], atol=1e-5, rtol=0)
    torch.testing.assert_close(d["fd"], d["forward"], atol=1e-3, rtol=0)
