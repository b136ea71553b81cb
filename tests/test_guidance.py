"""Classifier-free guidance: limits w = 0 and w = 1, intervals, and guided sampling of a mixture."""

from __future__ import annotations

import json

import pytest
import torch

from noise2data import heun, make_path, uniform_grid
from noise2data.errors import UserError
from noise2data.guidance import classifier_free_guidance, guided_model_field
from noise2data.models import MLP, MLPConfig
from noise2data.training import TrainConfig, train
from oracles import F64, MixtureOracle

MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.5]], dtype=F64)
COVS = torch.stack([0.5 * torch.eye(2, dtype=F64), torch.tensor([[0.6, 0.2], [0.2, 0.4]], dtype=F64)])


def oracles(path):
    """The unconditional mixture (classes = components, weights 1/2) and each class's own law."""
    full = MixtureOracle(MEANS, COVS, torch.ones(2), path)
    per_class = [MixtureOracle(MEANS[k:k + 1], COVS[k:k + 1], torch.ones(1), path) for k in range(2)]
    return full, per_class


def test_scale_zero_is_unconditional_one_is_conditional_and_interval_limits(path):
    full, per_class = oracles(path)
    x = full.sample_t(64, 0.5, torch.Generator().manual_seed(0))
    t = torch.linspace(0.05, 0.95, 64, dtype=F64)
    cond, unc = per_class[1].velocity, full.velocity
    assert torch.allclose(classifier_free_guidance(cond, unc, 0.0)(x, t), unc(x, t))
    assert torch.allclose(classifier_free_guidance(cond, unc, 1.0)(x, t), cond(x, t))
    g = classifier_free_guidance(cond, unc, 3.0, interval=(0.3, 0.6))(x, t)
    inside = (t >= 0.3) & (t <= 0.6)
    assert torch.allclose(g[~inside], cond(x, t)[~inside])
    assert torch.allclose(g[inside], (unc(x, t) + 3 * (cond(x, t) - unc(x, t)))[inside])
    # where no t of the batch lies in the interval, the null field is not evaluated at all (and not counted)
    calls = []
    guided = classifier_free_guidance(cond, lambda x, t: calls.append(1) or unc(x, t), 3.0, interval=(0.3, 0.6))
    assert torch.allclose(guided(x, torch.full_like(t, 0.8)), cond(x, torch.full_like(t, 0.8))) and not calls
    guided(x, t)
    assert len(calls) == 1 and guided.network_evals == 1 + 2


def test_guided_sampling_of_a_mixture_behaves_as_theory_predicts():
    # w = 1 samples the class's own law exactly; w = 0 the mixture; w > 1 pushes samples further into
    # the class, away from the other one: fewer samples the Bayes classifier would give to the other
    # class, and a mean beyond the class mean along the line between the classes.
    path = make_path("condot")
    full, per_class = oracles(path)
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    ts = uniform_grid(100)

    def sample(w: float) -> torch.Tensor:
        return heun(classifier_free_guidance(per_class[1].velocity, full.velocity, w), x0, ts).x

    direction = (MEANS[1] - MEANS[0]) / (MEANS[1] - MEANS[0]).norm()
    x1 = sample(1.0)
    assert torch.allclose(x1.mean(0), MEANS[1], atol=0.05)
    assert torch.allclose(torch.cov(x1.T), COVS[1], atol=0.05)
    x0_ = sample(0.0)
    assert torch.allclose(x0_.mean(0), MEANS.mean(0), atol=0.1)

    def wrong_class_share(x: torch.Tensor) -> float:
        lp = torch.stack([per_class[k].log_prob(x, torch.ones(len(x), dtype=F64)) for k in range(2)], 1)
        return float((lp[:, 0] > lp[:, 1]).double().mean())

    shares, shifts = [], []
    for w in (1.0, 2.0, 4.0):
        x = sample(w)
        shares.append(wrong_class_share(x))
        shifts.append(float((x.mean(0) - MEANS[1]) @ direction))
    assert shares[0] >= shares[1] >= shares[2]
    assert 0.0 < shifts[1] < shifts[2]  # extrapolation beyond the class mean, growing with w


def test_label_dropout_trains_one_network_for_both_fields_and_guidance_draws_the_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (4000,), generator=g)
    data = (MEANS[labels] + 0.3 * torch.randn(4000, 2, generator=g, dtype=F64)).float()
    torch.manual_seed(0)
    model = MLP(MLPConfig(data_shape=(2,), hidden=64, depth=2, num_classes=2))
    path = make_path("condot")
    train(model, path, data, TrainConfig(steps=600, batch_size=256, device="cpu", label_dropout=0.2), labels=labels,
          progress=False)
    model.eval()
    x0 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(2))
    for cls in (0, 1):
        y = torch.full((1000,), cls)
        with torch.no_grad():
            x = heun(guided_model_field(model, path, "velocity", y, 2.0), x0, uniform_grid(16)).x
        nearest = (torch.cdist(x.double(), MEANS).argmin(1) == cls).double().mean()
        assert nearest > 0.97
    with torch.no_grad():  # the null label alone gives both classes
        x = heun(guided_model_field(model, path, "velocity", torch.zeros(1000, dtype=torch.long), 0.0), x0,
                 uniform_grid(16)).x
    share = (torch.cdist(x.double(), MEANS).argmin(1) == 1).double().mean()
    assert 0.3 < share < 0.7


def test_guidance_errors_are_named():
    unc = MLP(MLPConfig(data_shape=(2,)))
    path = make_path("condot")
    with pytest.raises(UserError, match="trained with labels"):
        guided_model_field(unc, path, "velocity", torch.zeros(3, dtype=torch.long), 2.0)
    cond = MLP(MLPConfig(data_shape=(2,), num_classes=3))
    with pytest.raises(UserError, match="0..2"):
        guided_model_field(cond, path, "velocity", torch.tensor([0, 3]), 2.0)
    with pytest.raises(UserError, match="interval"):
        guided_model_field(cond, path, "velocity", torch.tensor([0, 1]), 2.0, interval=(0.5, 0.2))
    with pytest.raises(UserError, match="unconditional"):
        train(unc, path, torch.zeros(10, 2), TrainConfig(steps=1, device="cpu"),
              labels=torch.zeros(10, dtype=torch.long))
    with pytest.raises(UserError, match="one per sample"):
        train(cond, path, torch.zeros(10, 2), TrainConfig(steps=1, device="cpu"),
              labels=torch.zeros(9, dtype=torch.long))


def test_cli_trains_on_labels_and_samples_a_guided_class(tmp_path, capsys):
    import numpy as np

    from noise2data.cli import main

    g = np.random.default_rng(0)
    lab = g.integers(0, 2, 3000)
    x = (MEANS.numpy()[lab] + 0.3 * g.standard_normal((3000, 2))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", lab, fmt="%d")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.csv"), "--steps", "300",
                 "--hidden", "64", "--depth", "2", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["num_classes"] == 2
    for w in ("1", "3"):
        assert main(["sample", str(out), "--label", "0", "--guidance", w, "--n", "500",
                     "--out", str(tmp_path / f"s{w}.npy"), "--device", "cpu"]) == 0
        s = torch.from_numpy(np.load(tmp_path / f"s{w}.npy")).double()
        assert (torch.cdist(s, MEANS).argmin(1) == 0).double().mean() > 0.95
    capsys.readouterr()
    for argv, message in ((["--guidance", "2"], "needs --label"), (["--label", "2"], "0..1"),
                          (["--label", "0", "--guidance-interval", "0.5"], "LO,HI")):
        assert main(["sample", str(out), "--n", "10", "--out", str(tmp_path / "z.npy"), *argv]) == 2
        assert message in capsys.readouterr().err
    np.save(tmp_path / "short.npy", lab[:100])
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "short.npy"),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "expected 3000 labels" in capsys.readouterr().err
