"""Conditions stated once: labels and vectors, the null condition, dropout, and a learned p(x | y)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noise2data import heun, make_path, uniform_grid
from noise2data.cli import main
from noise2data.errors import UserError
from noise2data.guidance import guided_model_field
from noise2data.models import MLP, DiT, DiTConfig, MLPConfig, UNet, UNetConfig
from noise2data.models.conditioning import check_condition, drop_condition, null_condition
from noise2data.training import TrainConfig, train


def test_check_condition_rules():
    labels = torch.tensor([0, 2, 3])
    check_condition(labels, 3, 3, 0, allow_null=True)  # 3 is the null label
    with pytest.raises(UserError, match=r"0..2 for this model"):
        check_condition(labels, 3, 3, 0, allow_null=False)
    with pytest.raises(UserError, match="3 integers"):
        check_condition(labels.float(), 3, 3, 0, allow_null=True)
    y = torch.tensor([[0.5, 1.0], [float("nan"), float("nan")]])
    check_condition(y, 2, 0, 2, allow_null=True)  # a NaN row is the null condition
    with pytest.raises(UserError, match="1 condition rows are NaN"):
        check_condition(y, 2, 0, 2, allow_null=False)
    with pytest.raises(UserError, match="row 0 has NaN/Inf"):
        check_condition(torch.tensor([[float("nan"), 1.0]]), 1, 0, 2, allow_null=True)
    with pytest.raises(UserError, match=r"shape \(2, 3\)"):
        check_condition(y, 2, 0, 3, allow_null=True)
    with pytest.raises(UserError, match="unconditional"):
        check_condition(y, 2, 0, 0, allow_null=True)


def test_dropout_uses_the_null_condition_at_the_asked_rate():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(4000, 3)
    dropped = drop_condition(y, 0.25, 0, g)
    null = torch.isnan(dropped).all(1)
    assert 0.22 < float(null.double().mean()) < 0.28  # sd 0.007
    assert torch.equal(dropped[~null], y[~null])
    labels = torch.randint(0, 5, (4000,), generator=g)
    d2 = drop_condition(labels, 0.25, 5, g)
    assert torch.equal(d2[d2 != 5], labels[d2 != 5]) and 0.22 < float((d2 == 5).double().mean()) < 0.28
    assert torch.isnan(null_condition(y, 0)).all()


@pytest.mark.parametrize("make", [
    lambda: MLP(MLPConfig(data_shape=(1, 8, 8), hidden=32, depth=2, cond_dim=3)),
    lambda: UNet(UNetConfig(data_shape=(1, 8, 8), base_channels=16, channel_mults=(1, 2), cond_dim=3)),
    lambda: DiT(DiTConfig(data_shape=(1, 8, 8), patch=2, hidden=32, depth=1, heads=2, cond_dim=3)),
])
def test_every_model_takes_vectors_and_a_nan_row_equals_no_condition(make):
    torch.manual_seed(0)
    m = make()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    y = torch.tensor([[0.3, -1.0, 2.0], [float("nan")] * 3])
    out = m(x, t, y)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[1], m(x, t)[1], atol=1e-6)  # NaN row == cond=None (the learned null)
    y2 = y.clone()
    y2[0, 0] = 1.3
    assert not torch.allclose(out[0], m(x, t, y2)[0])  # the condition matters
    with pytest.raises(UserError, match="NaN/Inf"):
        m(x, t, torch.tensor([[0.3, float("inf"), 1.0], [0.0, 0.0, 0.0]]))


def _linear_data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """y ~ U(-2, 2); x | y ~ N((y, -y), 0.3^2 I)."""
    y = torch.rand(n, 1, generator=g) * 4 - 2
    return torch.cat([y, -y], 1) + 0.3 * torch.randn(n, 2, generator=g), y


def test_a_vector_conditioned_model_learns_p_x_given_y_and_guidance_sharpens_it():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data, y = _linear_data(20_000, g)
    path = make_path("condot")
    model = MLP(MLPConfig(data_shape=(2,), hidden=128, depth=3, cond_dim=1))
    train(model, path, data, TrainConfig(steps=800, batch_size=256, device="cpu", label_dropout=0.15), labels=y,
          progress=False)
    model.eval()
    x0 = torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        for target in (-1.5, 0.5, 1.5):
            cond = torch.full((2000, 1), target)
            x = heun(guided_model_field(model, path, "velocity", cond, 1.0), x0, uniform_grid(16)).x
            assert torch.allclose(x.mean(0), torch.tensor([target, -target]), atol=0.12)  # se of the mean: 0.007
            assert 0.2 < float(x.std(0).mean()) < 0.4  # p(x | y) has sd 0.3
        free = heun(guided_model_field(model, path, "velocity", torch.full((2000, 1), 1.5), 0.0), x0,
                    uniform_grid(16)).x  # w = 0: the unconditional law, x1 ~ U(-2, 2) + noise
        assert abs(float(free[:, 0].mean())) < 0.2 and float(free[:, 0].std()) > 0.9


def test_cli_cond_file_trains_and_samples_for_a_vector(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    data, y = _linear_data(2000, g)
    np.save(tmp_path / "x.npy", data.numpy())
    np.savetxt(tmp_path / "y.csv", y.numpy(), delimiter=",")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--cond-file", str(tmp_path / "y.csv"), "--steps", "5",
                 "--batch-size", "32", "--no-progress", "--device", "cpu", "--out", str(out)]) == 0
    s = tmp_path / "s.npy"
    assert main(["sample", str(out), "--condition", "1.5", "--guidance", "2", "--n", "10", "--steps", "2",
                 "--out", str(s)]) == 0
    assert np.load(s).shape == (10, 2)
    capsys.readouterr()
    assert main(["sample", str(out), "--condition", "1.5,2", "--out", str(s)]) == 2
    assert "vectors of 1 numbers" in capsys.readouterr().err
    assert main(["sample", str(out), "--label", "1", "--out", str(s)]) == 2
    assert "pass --condition" in capsys.readouterr().err
    np.save(tmp_path / "labels.npy", np.arange(2000) % 3)
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--cond-file", str(tmp_path / "y.csv"), "--labels",
                 str(tmp_path / "labels.npy"), "--out", str(tmp_path / "r2")]) == 2
    assert "not both" in capsys.readouterr().err
    np.save(tmp_path / "short.npy", y.numpy()[:10])
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--cond-file", str(tmp_path / "short.npy"),
                 "--out", str(tmp_path / "r3")]) == 2
    assert "one row per sample" in capsys.readouterr().err
