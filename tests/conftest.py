"""Shared fixtures: every schedule, a float64 default for oracle tests, and two video runs (a blob learned in
400 steps, and a CLI run trained for 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.data import Standardizer
from noise2data.paths import GaussianPath, make_path, make_schedule
from noise2data.run import Run
from noise2data.training import TrainConfig, train
from noise2data.video.known import training_condition, unknown_weight
from noise2data.video.model import VideoUNet, VideoUNetConfig
from noise2data.video.toy import moving_blobs

SCHEDULE_NAMES = ["condot", "cosine", "polynomial", "vp", "ve"]


@pytest.fixture(params=SCHEDULE_NAMES)
def path(request) -> GaussianPath:
    return GaussianPath(make_schedule(request.param))


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def blob_run(tmp_path_factory) -> Run:
    """A blob at 0.5 px a frame on 8x8 frames (6 of them), learned in 400 steps (velocity objective)."""
    steps = 400
    clips, _ = moving_blobs(512, frames=6, size=8, speed=0.5, seed=0)
    torch.manual_seed(0)
    cfg = VideoUNetConfig((6, 1, 8, 8), patch=1, base_channels=32, channel_mults=(1, 2), attention_resolution=4)
    path = make_path("condot")
    res = train(VideoUNet(cfg), path, clips * 2 - 1, TrainConfig(steps=steps, batch_size=16, lr=3e-3, warmup_steps=20,
                                                                  device="cpu", ema_decay=0.99), progress=False,
                batch_condition=training_condition, loss_weight=unknown_weight)
    return Run(run_dir=tmp_path_factory.mktemp("blob"), config={"model": cfg.to_dict(), "data": {"shape": [6, 1, 8, 8]},
                                                               "modality": "video"},
               model=res.ema.eval(), path=path, prediction="velocity", standardizer=Standardizer.identity((6, 1, 8, 8)),
               step=steps, device=torch.device("cpu"))


@pytest.fixture(scope="session")
def video_run(tmp_path_factory):  # noqa: ANN201 - (folder with v.npz, the run's folder)
    """24 blob clips (8 frames of 16x16) in v.npz and a video run trained on them for 2 steps from the CLI."""
    root = tmp_path_factory.mktemp("vid")
    clips, _ = moving_blobs(24, frames=8, size=16, seed=0)
    np.savez(root / "v.npz", videos=(clips[:, :, 0] * 255).round().to(torch.uint8).numpy())
    run = root / "run"
    assert main(["train", "--data", f"video:{root / 'v.npz'}", "--steps", "2", "--batch-size", "4",
                 "--checkpoint-every", "2", "--no-progress", "--device", "cpu", "--out", str(run)]) == 0
    return root, run
