"""In-domain FID/KID: the Frechet distance against its closed form, the extractor, IDX files."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.data.images import LabelledImages, load_digits_images, load_mnist, read_idx
from noise2data.errors import UserError
from noise2data.metrics.features import load_extractor, save_extractor, train_feature_net
from noise2data.metrics.fid import frechet_distance, image_quality, kernel_inception_distance


def test_frechet_distance_matches_the_gaussian_closed_form():
    # diagonal covariances: FID = |mu_a - mu_b|^2 + sum (s_a - s_b)^2 (population values)
    g = torch.Generator().manual_seed(0)
    mu_a, mu_b = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.5, 1.0, 0.0])
    s_a, s_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.5, 1.0, 0.5])
    a = mu_a + s_a * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    b = mu_b + s_b * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    expected = float((mu_a - mu_b).pow(2).sum() + (s_a - s_b).pow(2).sum())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_with_full_covariances_agrees_with_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(500, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    s_a, s_b = np.cov(a.numpy().T), np.cov(b.numpy().T)
    covmean = scipy_linalg.sqrtm(s_a @ s_b).real
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum()) + np.trace(s_a + s_b - 2 * covmean)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_kid_is_unbiased_near_zero_for_the_same_law_and_positive_otherwise():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    same, sd = kernel_inception_distance(a, b, subsets=20, subset_size=500)
    shifted, _ = kernel_inception_distance(a + 0.5, b, subsets=20, subset_size=500)
    assert abs(same) < 3 * sd + 1e-3
    assert shifted > 10 * max(abs(same), sd)


@pytest.fixture(scope="module")
def digits_split():
    d = load_digits_images()
    val = torch.arange(len(d.labels)) % 5 == 0
    return (LabelledImages(d.images[~val], d.labels[~val], d.value_range, "digits-train"),
            LabelledImages(d.images[val], d.labels[val], d.value_range, "digits-val"))


@pytest.fixture(scope="module")
def extractor(digits_split):
    train, val = digits_split
    return train_feature_net(train, val, epochs=25, seed=0)


def test_extractor_classifies_digits_and_fid_sees_corruption(extractor, digits_split):
    train, val = digits_split
    assert extractor.val_accuracy > 0.9
    ref, floor_ref = train.images[:700], train.images[700:1400]
    clean = image_quality(extractor, floor_ref, ref, sample_labels=train.labels[700:1400])
    assert clean["class_accuracy"] > 0.95
    g = torch.Generator().manual_seed(0)
    fids = [image_quality(extractor, (floor_ref + s * torch.randn(floor_ref.shape, generator=g)).clamp(0, 16),
                          ref)["fid"] for s in (4.0, 6.0, 8.0)]  # below ~2 grey levels FID is at its floor
    assert clean["fid"] < fids[0] < fids[1] < fids[2]
    wrong = image_quality(extractor, floor_ref, ref, sample_labels=(train.labels[700:1400] + 1) % 10)
    assert wrong["class_accuracy"] < 0.1


def test_extractor_round_trips_with_its_provenance(extractor, digits_split, tmp_path):
    f = save_extractor(extractor, tmp_path / "fx.safetensors")
    back = load_extractor(f)
    x = digits_split[1].images[:50]
    assert torch.equal(back.features(x), extractor.features(x))
    assert back.data_hash == extractor.data_hash and back.val_accuracy == extractor.val_accuracy
    with pytest.raises(UserError, match="shape"):
        back.features(torch.zeros(3, 1, 28, 28))
    with pytest.raises(UserError, match="not found"):
        load_extractor(tmp_path / "missing.safetensors")


def test_a_torchscript_extractor_can_stand_in_for_inception(tmp_path):
    net = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5)))
    net.save(str(tmp_path / "feat.pt"))
    ext = load_extractor(tmp_path / "feat.pt")
    assert ext.features(torch.zeros(4, 1, 8, 8)).shape == (4, 5)
    with pytest.raises(UserError, match="class accuracy"):
        ext.predict(torch.zeros(4, 1, 8, 8))


def write_idx(path, arr: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    data = header + arr.astype(">u1" if code == 0x08 else arr.dtype).tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


def test_idx_files_gzipped_or_not(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs, 0x08)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels, 0x08)
    d = load_mnist(tmp_path, "train")
    assert d.images.shape == (7, 1, 28, 28) and torch.equal(d.images[:, 0].byte(), torch.from_numpy(imgs))
    assert d.to_unit().min() >= -1 and d.to_unit().max() <= 1
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "bad")
    with pytest.raises(UserError, match="not found"):
        load_mnist(tmp_path, "test")


def test_real_mnist_files_if_present():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not folder.is_dir():
        pytest.skip("../shared/data/mnist is not on this machine")
    d = load_mnist(folder, "test")
    assert d.images.shape == (10_000, 1, 28, 28) and d.num_classes == 10
    assert math.isclose(float(d.images.mean() / 255), 0.1325, abs_tol=2e-3)  # test-set pixel mean


def test_features_command_and_fid_in_eval(tmp_path, capsys):
    fx = tmp_path / "fx.safetensors"
    assert main(["features", "--data", "digits", "--epochs", "2", "--out", str(fx)]) == 0
    assert fx.is_file() and (tmp_path / "fx.safetensors.json").is_file()
    assert main(["features", "--data", "digits", "--out", str(tmp_path / "fx.bin")]) == 2
    assert "safetensors" in capsys.readouterr().err
