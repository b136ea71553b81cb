"""Image runs from the CLI: digits with a class-conditional U-Net, guided grids as PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.data import image_dataset, load_data
from noise2data.plotting import image_grid


def test_digits_load_as_images_in_unit_range_with_labels():
    x, y = image_dataset("digits")
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert x.min() == -1 and x.max() == 1 and set(y.tolist()) == set(range(10))
    assert torch.equal(load_data("digits"), x)


def test_image_grid_tiles_in_order():
    imgs = torch.stack([torch.full((1, 2, 3), float(v)) for v in (-1.0, 0.0, 1.0)])
    g = image_grid(imgs, nrow=2, pad=1)
    assert g.shape == (2 * 3 + 1, 2 * 4 + 1, 1)
    assert g[1, 1, 0] == 0.0 and g[1, 5, 0] == 0.5 and g[4, 1, 0] == 1.0  # black, grey, white
    assert g[0, 0, 0] == 1.0  # the padding is white


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("img") / "digits"
    assert main(["train", "--data", "digits", "--model", "unet", "--cond", "label", "--steps", "6",
                 "--batch-size", "16", "--checkpoint-every", "6", "--no-progress", "--device", "cpu",
                 "--out", str(out)]) == 0
    return out


def test_unet_run_records_its_model_and_standardisation(digits_run):
    cfg = json.loads((digits_run / "config.json").read_text())
    assert cfg["model"]["name"] == "unet" and cfg["model"]["num_classes"] == 10
    assert cfg["data"]["standardize"] == "none" and cfg["data"]["shape"] == [1, 8, 8]


def test_grids_per_class_and_for_one_label(digits_run, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    grid = tmp_path / "grid.png"
    assert main(["sample", str(digits_run), "--grid-per-class", "3", "--guidance", "2", "--steps", "2",
                 "--out", str(grid), "--device", "cpu"]) == 0
    img = matplotlib.image.imread(grid)
    assert img.shape[:2] == (4 * (10 * 9 + 1), 4 * (3 * 9 + 1))  # 10 rows of 3, 8x8 + 1px padding, x4
    threes = tmp_path / "threes.npy"
    assert main(["sample", str(digits_run), "--label", "3", "--guidance", "3", "--n", "5", "--steps", "2",
                 "--out", str(threes), "--device", "cpu"]) == 0
    threes_x = np.load(threes)  # in the digits' own units: floats 0..16, (N, H, W)
    assert threes_x.shape == (5, 8, 8) and threes_x.dtype == np.float32
    assert threes_x.min() >= 0 and threes_x.max() <= 16 and threes_x.max() > 1
    raw = tmp_path / "raw.npy"
    assert main(["sample", str(digits_run), "--label", "3", "--guidance", "3", "--n", "5", "--steps", "2",
                 "--out", str(raw), "--raw", "--device", "cpu"]) == 0
    raw_x = np.load(raw)  # the model's tensor: channels first, [-1, 1]
    assert raw_x.shape == (5, 1, 8, 8)
    np.testing.assert_allclose((np.clip(raw_x[:, 0], -1, 1) + 1) * 8, threes_x, atol=1e-5)


def test_images_guide_on_the_measured_interval_by_default(digits_run, tmp_path, capsys):
    """Images guide on t in [0.3, 1] unless told otherwise (README: the study on class-conditional MNIST), from
    Python as from the command line, which says so; guidance 1 has no interval to speak of."""
    from noise2data.modalities.images import IMAGES
    from noise2data.run import load_run

    assert IMAGES.guidance_interval == (0.3, 1.0)
    run = load_run(digits_run)
    kw = dict(solver="midpoint", steps=2, label=3, guidance=3.0)  # evaluations at t = 0, 0.25, 0.5, 0.75
    default, late = run.sample(4, **kw), run.sample(4, guidance_interval=(0.3, 1.0), **kw)
    whole = run.sample(4, guidance_interval=(0.0, 1.0), **kw)
    assert torch.equal(default.x, late.x) and not torch.allclose(default.x, whole.x)
    assert (default.network_evals, whole.network_evals) == (6, 8)
    capsys.readouterr()
    out = str(tmp_path / "s.npy")
    assert main(["sample", str(digits_run), "--label", "3", "--guidance", "3", "--n", "4", "--steps", "2",
                 "--out", out]) == 0
    assert "(midpoint, guidance 3 on t in [0.3, 1], label 3, 4 NFE, 6 network evaluations (guided)" in \
        capsys.readouterr().err
    np.testing.assert_allclose(np.load(out), (np.clip(default.x[:, 0].numpy(), -1, 1) + 1) * 8, atol=1e-5)
    assert main(["sample", str(digits_run), "--label", "3", "--n", "4", "--steps", "2", "--out", out]) == 0
    assert "(midpoint, guidance 1, label 3, 4 NFE, step" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "(default 0,1; images 0.3,1)" in " ".join(capsys.readouterr().out.split())


def test_nll_scores_n_images_of_a_named_dataset(digits_run, capsys):
    """``nll --data digits --n 5`` scores 5 images (an image dataset's name gives all of them; --n was ignored)."""
    capsys.readouterr()
    assert main(["nll", str(digits_run), "--data", "digits", "--n", "5", "--steps", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 5 and res["dims"] == 64 and np.isfinite(res["nll_nats"])


def test_image_misuse_is_one_line(digits_run, tmp_path, capsys):
    assert main(["train", "--data", "moons", "--cond", "label", "--out", str(tmp_path / "m")]) == 2
    assert "--labels FILE" in capsys.readouterr().err
    assert main(["train", "--data", "moons", "--model", "unet", "--out", str(tmp_path / "u")]) == 2
    assert "images (C, H, W)" in capsys.readouterr().err
    assert main(["sample", str(digits_run), "--grid-per-class", "2", "--out", str(tmp_path / "g.npy")]) == 2
    assert ".png" in capsys.readouterr().err


def test_dit_run_with_trajectory_strip_and_gif(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from PIL import Image

    out = tmp_path / "dit"
    assert main(["train", "--data", "digits", "--model", "dit", "--cond", "label", "--steps", "3", "--batch-size",
                 "8", "--warmup-steps", "0", "--no-progress", "--device", "cpu", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["name"] == "dit" and cfg["model"]["patch"] == 4 and cfg["model"]["num_classes"] == 10
    strip, gif = tmp_path / "strip.png", tmp_path / "denoise.gif"
    assert main(["sample", str(out), "--label", "7", "--n", "6", "--steps", "12", "--out", str(tmp_path / "x.npy"),
                 "--trajectory-plot", str(strip), "--trajectory-gif", str(gif)]) == 0
    assert Image.open(strip).size[0] > Image.open(strip).size[1]  # frames run left to right
    with Image.open(gif) as anim:
        assert anim.n_frames == 13  # the start and every one of the 12 steps
        assert anim.size == (3 * (3 * 9 + 1), 3 * (2 * 9 + 1))  # 6 samples as 3 columns x 2 rows, scaled x3


def test_eval_of_a_class_conditional_image_run_reports_fid_and_class_accuracy(digits_run, tmp_path):
    fx = tmp_path / "fx.safetensors"
    assert main(["features", "--data", "digits", "--epochs", "2", "--out", str(fx)]) == 0
    res_file = tmp_path / "eval.json"
    assert main(["eval", str(digits_run), "--metrics", "fid", "--features", str(fx), "--n", "200", "--steps", "2",
                 "--guidance", "2", "--out", str(res_file)]) == 0
    res = json.loads(res_file.read_text())
    img = res["image"]
    assert img["n"] == 200 and 0 <= img["class_accuracy"] <= 1 and img["guidance"] == 2
    assert img["fid"] > img["fid_floor"] > 0  # six training steps are far from the data
    # images guide on t in [0.3, 1] by default (midpoint 2 steps evaluates at t = 0, 0.25, 0.5, 0.75): the null
    # label is evaluated at two of the four, and the interval is recorded
    assert img["guidance_interval"] == [0.3, 1.0] and res["sampler"]["network_evals"] == 6
    out = tmp_path / "eval_interval.json"
    assert main(["eval", str(digits_run), "--metrics", "fid", "--features", str(fx), "--n", "200", "--steps", "2",
                 "--guidance", "2", "--guidance-interval", "0,1", "--out", str(out)]) == 0
    whole = json.loads(out.read_text())
    assert "guidance_interval" not in whole["image"] and whole["sampler"]["network_evals"] == 8
    assert whole["image"]["fid"] != img["fid"]


def test_extractor_units_round_trip():
    from noise2data.data.images import load_digits_images
    from noise2data.metrics.features import FeatureExtractor, FeatureNet, FeatureNetConfig

    d = load_digits_images()
    ext = FeatureExtractor(FeatureNet(FeatureNetConfig((1, 8, 8), 10, (0.0, 16.0))), None, "-", "test")
    assert torch.allclose(ext.from_unit(d.to_unit()[:50]), d.images[:50], atol=1e-5)
    assert torch.allclose(ext.features(ext.from_unit(d.to_unit()[:50])), ext.features(d.images[:50]), atol=1e-5)
