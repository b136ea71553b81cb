"""Data: toy distributions, mixtures, array files of any shape, validation errors, standardisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.data import TOY_DATASETS, GaussianMixture, Standardizer, load_array, load_data, sample_toy
from noise2data.errors import UserError


@pytest.mark.parametrize("name", list(TOY_DATASETS))
def test_toy_datasets_are_reproducible(name):
    a = sample_toy(name, 500, torch.Generator().manual_seed(1))
    b = sample_toy(name, 500, torch.Generator().manual_seed(1))
    dim = {"gmm6": 6, "gmm10": 10}.get(name, 2)
    assert a.shape == (500, dim) and a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.isfinite(a).all() and a.std(0).min() > 0.1


def test_checkerboard_occupies_alternate_squares(gen):
    x = sample_toy("checkerboard", 20_000, gen)
    assert x.abs().max() <= 4
    cells = ((x + 4) // 2).long()  # column, row in 0..3
    parity = (cells[:, 0] + cells[:, 1]) % 2
    assert (parity == parity[0]).all()  # all points on squares of one colour
    counts = torch.bincount(cells[:, 1] * 4 + cells[:, 0], minlength=16)
    assert (counts > 0).sum() == 8


def test_gaussian_mixture_moments_and_density(gen):
    gm = GaussianMixture.from_lists([[0, 0], [3, 1]], [[[1, 0.3], [0.3, 0.5]], [[0.2, 0], [0, 0.2]]], [0.25, 0.75])
    x = gm.sample(100_000, gen).double()
    torch.testing.assert_close(x.mean(0), torch.tensor([2.25, 0.75], dtype=torch.float64), atol=0.02, rtol=0)
    # the log density integrates to one over a grid
    g = torch.linspace(-6, 8, 400, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    p = gm.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(p.item() - 1) < 1e-3


@pytest.mark.parametrize("means, covs, words", [
    ([0, 0], [[[1]]], r"\(K, d\)"), ([[0, 0]], [[[1, 0]]], r"\(K, d, d\)"),
    ([[0, 0]], [[[1, 2], [2, 1]]], "positive definite"),
])
def test_bad_mixtures(means, covs, words):
    with pytest.raises(UserError, match=words):
        GaussianMixture.from_lists(means, covs)


@pytest.mark.parametrize("shape", [(50, 2), (20, 3, 4, 4), (30, 5, 3)])
def test_array_files_round_trip(tmp_path, shape):
    arr = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.save(tmp_path / "a.npy", arr)
    np.savez(tmp_path / "a.npz", samples=arr, labels=np.arange(shape[0]))
    torch.save({"x": torch.from_numpy(arr)}, tmp_path / "a.pt")
    for f, key in (("a.npy", None), ("a.npz", "samples"), ("a.pt", None)):
        out = load_data(str(tmp_path / f), key=key)
        assert out.shape == shape and np.allclose(out.numpy(), arr)
    with pytest.raises(UserError, match="several arrays"):
        load_array(tmp_path / "a.npz")


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    (tmp_path / "n.csv").write_text("1,2\n3,4\n")
    assert load_array(tmp_path / "h.csv").tolist() == [[1, 2], [3, 4], [5, 6]]
    assert load_array(tmp_path / "n.csv").shape == (2, 2)


def test_bad_data_files(tmp_path):
    cases = {
        "missing.npy": (None, "not found"),
        "nan.npy": (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), "NaN or Inf .first at index 1"),
        "one.npy": (np.zeros((1, 3)), "at least 2 samples"),
        "flat.npy": (np.zeros(10), r"\(N, \*D\)"),
        "str.npy": (np.array([["a", "b"], ["c", "d"]]), "not numeric"),
        "bool.npy": (np.ones((4, 2), dtype=bool), "not numeric"),
    }
    for name, (arr, words) in cases.items():
        if arr is not None:
            np.save(tmp_path / name, arr)
        with pytest.raises(UserError, match=words):
            load_data(str(tmp_path / name))
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    with pytest.raises(UserError, match="cannot read"):
        load_data(str(tmp_path / "bad.npy"))
    with pytest.raises(UserError, match="unknown dataset 'mons'"):
        load_data("mons")


def test_gmm_spec_file(tmp_path):
    f = tmp_path / "g.json"
    f.write_text(json.dumps({"means": [[0, 0], [4, 4]], "covs": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]}))
    x = load_data(f"gmm:{f}", n=1000)
    assert x.shape == (1000, 2)
    f.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_data(f"gmm:{f}")


@pytest.mark.parametrize("mode", ["feature", "global", "none"])
def test_standardizer_round_trip(mode, gen):
    x = torch.randn(1000, 3, 4, generator=gen) * 5 + 2
    x[:, 0, 0] = 7.0  # a constant feature must not divide by zero
    s = Standardizer.fit(x, mode)
    z = s.forward(x)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(s.inverse(z), x, atol=1e-4, rtol=1e-5)
    if mode == "feature":
        assert z[:, 1:].mean(0).abs().max() < 1e-4 and (z[:, 1:].std(0) - 1).abs().max() < 1e-4
    s2 = Standardizer.from_state_dict(s.state_dict())
    torch.testing.assert_close(s2.forward(x), z)
