"""Image files: folders (subfolders as classes, streaming), .npz, resizing/padding, flips, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.data import image_dataset
from noise2data.data.image_files import ImageSource, fit_images, load_image_folder, scan_folder
from noise2data.errors import UserError

Image = pytest.importorskip("PIL.Image")


def _write(folder, name, arr):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name)


@pytest.fixture()
def class_folder(tmp_path):
    """Two classes of 12x10 greyscale PNGs whose pixels encode (class, index)."""
    root = tmp_path / "imgs"
    for c, name in enumerate(["cats", "dogs"]):
        for i in range(3):
            _write(root / name, f"{i}.png", np.full((12, 10), 40 * c + 10 * i, dtype=np.uint8))
    return root


def test_subfolders_are_classes_and_pixels_map_to_unit_range(class_folder):
    x, y, classes = load_image_folder(class_folder)
    assert classes == ["cats", "dogs"] and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert x.shape == (6, 1, 12, 10)  # greyscale -> one channel, H x W as stored
    expect = torch.tensor([0, 10, 20, 40, 50, 60], dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(x[:, 0, 0, 0], expect)


def test_streaming_gives_the_same_images_as_memory(class_folder):
    x, _, _ = load_image_folder(class_folder, pad=2)
    src, _, _ = load_image_folder(class_folder, pad=2, stream=True)
    assert isinstance(src, ImageSource) and src.shape == x.shape == (6, 1, 16, 14)
    idx = torch.tensor([5, 0, 3, 3])
    assert torch.equal(src[idx], x[idx])
    # the folder is decoded again per batch: memory does not hold the set
    small, _, _ = load_image_folder(class_folder, memory_limit=10)
    assert isinstance(small, ImageSource)


def test_colour_images_resize_and_flat_folder(tmp_path):
    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    _write(root, "a.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    _write(root, "b.jpg", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    with pytest.raises(UserError, match="different sizes .* pass --resize N"):
        load_image_folder(root)
    x, y, classes = load_image_folder(root, size=8)
    assert x.shape == (2, 3, 8, 8) and y is None and classes == []
    assert x.min() >= -1 and x.max() <= 1


def test_unreadable_images_and_empty_or_mixed_folders_are_named(tmp_path):
    root = tmp_path / "bad"
    _write(root / "a", "ok.png", np.zeros((4, 4), dtype=np.uint8))
    (root / "a" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(UserError, match="cannot read .*broken.png as an image"):
        load_image_folder(root)
    with pytest.raises(UserError, match="image folder not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        scan_folder(tmp_path / "empty")
    _write(tmp_path / "mixed" / "c", "x.png", np.zeros((4, 4), dtype=np.uint8))
    _write(tmp_path / "mixed", "loose.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(UserError, match="loose images"):
        scan_folder(tmp_path / "mixed")


def test_npz_images_in_any_layout(tmp_path):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=hwc, labels=np.arange(5) % 2)
    x, y = image_dataset(f"images:{tmp_path / 'a.npz'}")
    assert x.shape == (5, 3, 6, 7) and y.tolist() == [0, 1, 0, 1, 0]
    assert abs(float(x[2, 1, 3, 4]) - (hwc[2, 3, 4, 1] / 127.5 - 1)) < 1e-6
    np.savez(tmp_path / "f.npz", images=rng.random((4, 8, 8)).astype(np.float32) * 2)
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        image_dataset(f"images:{tmp_path / 'f.npz'}")
    np.savez(tmp_path / "k.npz", pictures=hwc)
    with pytest.raises(UserError, match="no 'images' array"):
        image_dataset(f"images:{tmp_path / 'k.npz'}")


def test_pad_and_resize_mnist_style():
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    y = fit_images(x, pad=2)
    assert y.shape == (3, 1, 32, 32) and torch.equal(y[:, :, 2:30, 2:30], x)
    assert (y[:, :, :2] == -1).all() and (y[:, :, :, -2:] == -1).all()  # background
    flat = torch.full((1, 1, 28, 28), 0.25)
    assert torch.allclose(fit_images(flat, size=32), torch.full((1, 1, 32, 32), 0.25), atol=1e-6)
    digits, _ = image_dataset("digits", pad=4)
    assert digits.shape[1:] == (1, 16, 16)


def test_folder_trains_streamed_with_flips_and_padding(class_folder, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", f"images:{class_folder}", "--model", "unet", "--cond", "label", "--resize", "12",
            "--pad", "2", "--hflip", "--stream", "--steps", "4", "--batch-size", "4", "--checkpoint-every", "2",
            "--no-progress", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["shape"] == [1, 16, 16] and cfg["model"]["num_classes"] == 2 and cfg["train"]["hflip"]
    assert main(["train", "--data", "moons", "--hflip", "--out", str(tmp_path / "m")]) == 2
    assert "apply to image datasets" in capsys.readouterr().err


def test_hflip_mirrors_about_half_the_batch_and_refuses_vectors():
    from noise2data.models import MLP, MLPConfig
    from noise2data.paths import make_path
    from noise2data.training import TrainConfig, train
    from noise2data.training.loop import random_hflip

    img = torch.zeros(1, 1, 4, 6)
    img[..., :2] = 1.0  # bright on the left
    out = random_hflip(img.repeat(2000, 1, 1, 1), torch.Generator().manual_seed(0))
    left = out[:, 0, 0, 0] == 1
    assert torch.equal(out[left], img.repeat(int(left.sum()), 1, 1, 1))
    assert torch.equal(out[~left], img.flip(-1).repeat(int((~left).sum()), 1, 1, 1))
    assert 900 < int(left.sum()) < 1100  # binomial(2000, 1/2): sd 22
    cfg = TrainConfig(steps=2, batch_size=4, hflip=True, device="cpu")
    with pytest.raises(UserError, match="hflip mirrors images"):
        train(MLP(MLPConfig(data_shape=(4,))), make_path("condot"), torch.randn(10, 4), cfg, progress=False)


def test_features_learn_the_classes_of_a_folder_or_npz_and_match_a_resized_run(class_folder, tmp_path, capsys):
    """features --data images:... trains the FID extractor on the user's own classes (every fifth image validates),
    at the size a run trained with --resize makes; it refuses images without classes in one line."""
    from noise2data.metrics.features import load_extractor

    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    images = np.where(labels[:, None, None, None] == 1, 200, 30) + rng.integers(0, 40, (40, 8, 8, 3))
    np.savez(tmp_path / "two.npz", images=images.astype(np.uint8), labels=labels)
    fx = tmp_path / "fx.safetensors"
    assert main(["features", "--data", f"images:{tmp_path / 'two.npz'}", "--epochs", "30", "--out", str(fx)]) == 0
    assert "on 8 images" in capsys.readouterr().err  # 40 images, every fifth validates
    ext = load_extractor(fx)
    assert tuple(ext.net.config.image_shape) == (3, 8, 8) and ext.val_accuracy == 1.0  # bright against dark
    run = tmp_path / "run"
    assert main(["train", "--data", f"images:{tmp_path / 'two.npz'}", "--resize", "12", "--steps", "2",
                 "--batch-size", "8", "--no-progress", "--device", "cpu", "--out", str(run)]) == 0
    fx12 = tmp_path / "fx12.safetensors"
    assert main(["features", "--data", f"images:{tmp_path / 'two.npz'}", "--resize", "12", "--epochs", "1",
                 "--out", str(fx12)]) == 0
    assert tuple(load_extractor(fx12).net.config.image_shape) == (3, 12, 12)
    capsys.readouterr()
    assert main(["eval", str(run), "--features", str(fx12), "--n", "16", "--steps", "2", "--json"]) == 0
    assert "fid" in json.loads(capsys.readouterr().out)["image"]
    assert main(["eval", str(run), "--features", str(fx), "--n", "16", "--steps", "2"]) == 2  # 8x8 against 12x12
    assert "takes images of shape (3, 8, 8), got (3, 12, 12)" in capsys.readouterr().err
    assert main(["features", "--data", f"images:{class_folder}", "--epochs", "1", "--out",
                 str(tmp_path / "f.safetensors")]) == 0  # subfolders as classes
    assert "on 2 images" in capsys.readouterr().err  # 6 images in 2 classes
    np.savez(tmp_path / "plain.npz", images=images.astype(np.uint8))
    plain = ["features", "--data", f"images:{tmp_path / 'plain.npz'}", "--out", str(tmp_path / "p.safetensors")]
    assert main(plain) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no classes to learn" in err[0]
