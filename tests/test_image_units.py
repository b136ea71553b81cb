"""Samples in the user's units: an image run writes .npy/.npz in the dtype, value range and layout
its training data came in (uint8 in, uint8 out); ``--raw`` keeps the model's tensor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.data import image_dataset
from noise2data.data.image_units import RAW, ImageUnits, image_units

FAST = ["--model", "mlp", "--hidden", "16", "--depth", "1", "--steps", "3", "--batch-size", "8",
        "--checkpoint-every", "3", "--no-progress", "--device", "cpu"]


def _images(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.random(shape).astype(dtype)


@pytest.mark.parametrize("shape, dtype, layout", [
    ((12, 6, 6), np.uint8, "NHW"), ((12, 6, 6, 3), np.uint8, "NHWC"), ((12, 3, 6, 6), np.uint8, "NCHW"),
    ((12, 6, 6), np.float32, "NHW"), ((12, 6, 6, 3), np.float64, "NHWC"),
])
def test_loading_then_to_user_gives_the_source_back(tmp_path, shape, dtype, layout):
    x = _images(shape, dtype)
    np.savez(tmp_path / "x.npz", images=x)
    units = image_units(f"images:{tmp_path / 'x.npz'}", 3 if len(shape) == 4 else 1)
    assert units.layout == layout and units.dtype == ("uint8" if dtype == np.uint8 else "float32")
    model_view = image_dataset(f"images:{tmp_path / 'x.npz'}")[0]  # (N, C, H, W) in [-1, 1]
    back = units.to_user(model_view)
    assert back.shape == x.shape
    if dtype == np.uint8:
        assert back.dtype == np.uint8 and np.array_equal(back, x)  # exact for bytes
    else:
        assert back.dtype == np.float32 and np.allclose(back, x, atol=1e-6)


def test_units_clip_out_of_range_samples_and_refuse_a_bad_layout():
    u = ImageUnits("uint8", 0, 255, "NHW")
    out = u.to_user(torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0]).view(5, 1, 1, 1))
    assert out.dtype == np.uint8 and out.ravel().tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match="grey images"):
        u.to_user(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="layout one of"):
        ImageUnits("uint8", 0, 255, "HWN")
    assert RAW.to_user(torch.full((1, 3, 2, 2), 0.5)).shape == (1, 3, 2, 2)


def test_a_uint8_nhwc_run_samples_uint8_nhwc_and_raw_on_request(tmp_path):
    np.savez(tmp_path / "rgb.npz", images=_images((40, 8, 8, 3), np.uint8), labels=np.arange(40) % 2)
    run = tmp_path / "run"
    assert main(["train", "--data", f"images:{tmp_path / 'rgb.npz'}", "--out", str(run), *FAST]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["units"] == {"dtype": "uint8", "low": 0.0, "high": 255.0, "layout": "NHWC"}
    assert main(["sample", str(run), "--n", "5", "--steps", "2", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["samples"].dtype == np.uint8 and z["samples"].shape == (5, 8, 8, 3)
    assert main(["sample", str(run), "--n", "5", "--steps", "2", "--raw", "--out", str(tmp_path / "r.npy")]) == 0
    raw = np.load(tmp_path / "r.npy")
    assert raw.dtype == np.float32 and raw.shape == (5, 3, 8, 8)


def test_a_folder_of_grey_pngs_gives_uint8_nhw(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for i in range(6):
        Image.fromarray(_images((8, 8), np.uint8, seed=i)).save(tmp_path / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--data", f"images:{tmp_path}", "--out", str(run), *FAST]) == 0
    assert main(["sample", str(run), "--n", "3", "--steps", "2", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.dtype == np.uint8 and s.shape == (3, 8, 8)


def test_defaults_come_from_the_kind_of_data(tmp_path):
    pytest.importorskip("sklearn")
    run = tmp_path / "d"
    assert main(["train", "--data", "digits", "--steps", "2", "--checkpoint-every", "2", "--no-progress",
                 "--device", "cpu", "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["name"] == "unet" and cfg["cli"]["preset"] == "tiny"
    assert (cfg["train"]["batch_size"], cfg["train"]["lr"], cfg["data"]["standardize"]) == (128, 1e-3, "none")
