"""The identity judge: a classifier of the clips' own digits, cut out at the clips' scale, and eval reading
crops at the judge's size beside the real clips' identity (the judge's ceiling)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.errors import UserError
from noise2data.metrics.features import FeatureExtractor, FeatureNet, FeatureNetConfig
from noise2data.video import metrics as M
from noise2data.video.evaluation import _classes, judge_size
from noise2data.video.moving_mnist import DIGIT, moving_mnist


def bars(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in MNIST digits of two classes that any scale keeps apart: 0 a horizontal bar, 1 a vertical one."""
    imgs = np.zeros((n, DIGIT, DIGIT), np.uint8)
    for i in range(n):
        w = 3 + i % 3  # thickness varies within a class
        if i % 2 == 0:
            imgs[i, 14 - w // 2:14 + (w + 1) // 2, 4:24] = 255
        else:
            imgs[i, 4:24, 14 - w // 2:14 + (w + 1) // 2] = 255
    return imgs, np.arange(n) % 2


def test_digit_crop_set_cuts_every_digit_centred_at_the_clips_scale():
    imgs, labels = bars()
    assert M.crop_size(32) == 14 and M.crop_size(64) == 28
    for digits in (1, 2):
        mm = moving_mnist(imgs, labels, 12, frames=8, size=32, digits=digits, seed=2)
        clips = torch.from_numpy(mm.videos).float()[:, :, None] / 255  # (N, T, 1, 32, 32)
        crops, y, owner = M.digit_crop_set(clips, torch.from_numpy(mm.labels), torch.from_numpy(mm.centers),
                                           frames_per_clip=3, seed=0)
        assert crops.shape == (12 * 3 * digits, 1, 14, 14) and float(crops.min()) >= 0 and float(crops.max()) <= 1
        assert y.tolist() == [int(mm.labels[o, d]) for d in range(digits) for o in owner[:36].tolist()]
        assert owner.tolist() == [i for _ in range(digits) for i in range(12) for _ in range(3)]
        if digits == 1:  # each crop holds its digit's ink, centred within a pixel, in its class's direction
            centre = M.centres(crops[:, None])[:, 0]  # (M, 2)
            assert float((centre - 6.5).abs().max()) <= 1.0
            rows, cols = (crops[:, 0] > 0.5).any(2).sum(1), (crops[:, 0] > 0.5).any(1).sum(1)
            assert ((rows < cols) == (y == 0)).all()
    crops, _, owner = M.digit_crop_set(clips[:, :2], torch.from_numpy(mm.labels), torch.from_numpy(mm.centers[:, :2]),
                                       frames_per_clip=3)
    assert len(crops) == 12 * 2 * 2  # 2 frames hold 2 crops per digit, not 3: no frame is drawn twice


def test_the_judge_learns_the_clips_digits_and_eval_reads_real_clips_with_it(tmp_path, capsys):
    imgs, labels = bars()
    for name, n, seed in (("train", 300, 0), ("test", 8, 1)):
        mm = moving_mnist(imgs, labels, n, frames=8, size=32, speed=3.0, seed=seed)
        mm.save(tmp_path / f"{name}.npz")
    judge = tmp_path / "judge.safetensors"
    assert main(["features", "--data", f"video:{tmp_path / 'train.npz'}", "--epochs", "3", "--out", str(judge)]) == 0
    assert "14x14 crops" in capsys.readouterr().err
    meta = json.loads((tmp_path / "judge.safetensors.json").read_text())
    assert meta["config"]["image_shape"] == [1, 14, 14] and meta["val_accuracy"] > 0.95
    # read through eval's path: crops at the judge's own size, every frame of the real clips in its true class
    from noise2data.metrics.features import load_extractor
    from noise2data.video.data import load_video

    ext, test = load_extractor(judge), load_video(str(tmp_path / "test.npz"))
    assert judge_size(ext) == 14
    real01 = (test.clips + 1) / 2
    classes = _classes(ext, real01, M.centres(real01))  # (N, T)
    assert (classes == test.labels[:, :1]).double().mean() > 0.95
    run = tmp_path / "run"
    assert main(["train", "--data", f"video:{tmp_path / 'train.npz'}", "--steps", "1", "--batch-size", "2",
                 "--no-progress", "--device", "cpu", "--out", str(run)]) == 0
    out = tmp_path / "e.json"
    assert main(["eval", str(run), "--data", f"video:{tmp_path / 'test.npz'}", "--n", "4", "--best-of", "1",
                 "--steps", "1", "--classifier", str(judge), "--out", str(out)]) == 0
    pred = json.loads(out.read_text())["metrics"]["prediction"]
    assert pred["real_identity_kept"] >= 0.75 and pred["real_identity_true"] >= 0.75  # the judge's ceiling
    assert "real clips" in capsys.readouterr().out


def test_a_clip_net_or_clips_without_centres_cannot_judge_identity(tmp_path, capsys):
    clip_net = FeatureExtractor(FeatureNet(FeatureNetConfig((1, 4, 16, 16), 2, (-1.0, 1.0), dims=3)), None, "", "")
    with pytest.raises(UserError, match="--classifier must classify grey square digits"):
        judge_size(clip_net)
    np.savez(tmp_path / "v.npz", videos=np.zeros((4, 3, 16, 16), np.uint8), labels=np.zeros((4, 1), np.int64))
    assert main(["features", "--data", f"video:{tmp_path / 'v.npz'}", "--out", str(tmp_path / "j.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no labels and digit centres" in err and len(err.splitlines()) == 1
