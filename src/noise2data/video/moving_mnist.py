"""Moving MNIST, synthesised from MNIST digits (Srivastava et al. 2015).

Each clip places ``digits`` 28x28 MNIST digits in a 64x64 canvas, each moving at a constant
velocity (a random direction, ``speed`` pixels per frame) and reflected at the borders; digits
are combined by pixel-wise max. ``size=32`` renders at 64 and downsamples by 2 (a 2x2 box
filter: antialiased). ``color=True`` tints each digit with a random saturated colour on black
(RGB clips). Every clip's digit labels and the digits' centres per frame (intensity-weighted,
in pixels of the output size, (row, col)) are kept for the metrics.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError

CANVAS = 64
DIGIT = 28


@dataclass
class MovingMNIST:
    """``videos: (N, T, H, W)`` or ``(N, T, H, W, 3)`` uint8, ``labels: (N, K)``, ``centers: (N, T, K, 2)``."""

    videos: np.ndarray
    labels: np.ndarray
    centers: np.ndarray

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, videos=self.videos, labels=self.labels, centers=self.centers)
        return path


def trajectories(n: int, frames: int, digits: int, speed: float, generator: torch.Generator) -> Tensor:
    """Top-left corners ``(n, frames, digits, 2)`` (row, col) in the 64x64 canvas: constant velocity,
    reflected at the walls, so every digit stays inside the canvas."""
    limit = float(CANVAS - DIGIT)
    pos = torch.rand(n, digits, 2, generator=generator, dtype=torch.float64) * limit
    angle = torch.rand(n, digits, generator=generator, dtype=torch.float64) * 2 * math.pi
    vel = speed * torch.stack([torch.sin(angle), torch.cos(angle)], -1)  # (n, digits, 2)
    out = torch.empty(n, frames, digits, 2, dtype=torch.float64)
    for t in range(frames):
        out[:, t] = pos
        pos = pos + vel
        low, high = pos < 0, pos > limit  # reflect: the distance past a wall is walked back
        pos = torch.where(low, -pos, torch.where(high, 2 * limit - pos, pos))
        vel = torch.where(low | high, -vel, vel)
    return out


def saturated_colours(n: int, generator: torch.Generator) -> Tensor:
    """``(n, 3)`` random fully saturated, full-value colours."""
    hues = torch.rand(n, generator=generator).tolist()
    return torch.tensor([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues], dtype=torch.float32)


def render(images: Tensor, corners: Tensor, colours: Tensor | None = None) -> Tensor:
    """Clips ``(n, T, C, 64, 64)`` in [0, 1] from digit ``images: (n, K, 28, 28)`` in [0, 1] at integer-rounded
    ``corners: (n, T, K, 2)``; ``colours: (n, K, 3)`` tints them (C = 3), else C = 1."""
    n, frames, k, _ = corners.shape
    c = 1 if colours is None else 3
    canvas = torch.zeros(n, frames, c, CANVAS, CANVAS)
    rows = corners.round().long()
    for i in range(n):
        for t in range(frames):
            for j in range(k):
                r, q = int(rows[i, t, j, 0]), int(rows[i, t, j, 1])
                digit = images[i, j][None] if colours is None else images[i, j][None] * colours[i, j][:, None, None]
                window = canvas[i, t, :, r:r + DIGIT, q:q + DIGIT]
                torch.maximum(window, digit, out=window)
    return canvas


def digit_centres(images: Tensor) -> Tensor:
    """Intensity-weighted centre (row, col) of each 28x28 digit ``(..., 28, 28)`` -> ``(..., 2)``."""
    grid = torch.arange(DIGIT, dtype=torch.float64)
    mass = images.double().sum((-2, -1)).clamp(min=1e-9)
    r = (images.double().sum(-1) * grid).sum(-1) / mass
    c = (images.double().sum(-2) * grid).sum(-1) / mass
    return torch.stack([r, c], -1)


def moving_mnist(images: np.ndarray, labels: np.ndarray, n: int, *, frames: int = 20, size: int = 64,
                 digits: int = 1, speed: float = 3.0, color: bool = False, seed: int = 0) -> MovingMNIST:
    """``n`` clips from MNIST ``images: (M, 28, 28)`` uint8 with ``labels: (M,)``.

    Returns uint8 videos at ``size`` (64, or 32: rendered at 64 and box-downsampled by 2), the
    digits' labels and their centres per frame in output pixels.
    """
    if size not in (32, 64):
        raise UserError(f"--size must be 64 (the usual canvas) or 32 (rendered at 64, downsampled), got {size}")
    if frames < 2 or digits < 1 or n < 1 or not speed > 0:
        raise UserError(f"need n >= 1, frames >= 2, digits >= 1 and speed > 0; got {n}, {frames}, {digits}, {speed}")
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(images), (n, digits), generator=g)
    digit_imgs = torch.from_numpy(images.astype(np.float32) / 255.0)[pick]  # (n, K, 28, 28)
    corners = trajectories(n, frames, digits, speed, g)
    colours = saturated_colours(n * digits, g).view(n, digits, 3) if color else None
    chunks = []
    for start in range(0, n, 256):  # bounded memory at any n
        sl = slice(start, start + 256)
        clip = render(digit_imgs[sl], corners[sl], None if colours is None else colours[sl])  # (b, T, C, 64, 64)
        if size == 32:
            b, t = clip.shape[:2]
            clip = F.avg_pool2d(clip.flatten(0, 1), 2).view(b, t, -1, 32, 32)
        chunks.append((clip * 255).round().clamp(0, 255).to(torch.uint8))
    videos = torch.cat(chunks)  # (n, T, C, H, W)
    centres = corners.round() + digit_centres(digit_imgs)[:, None]  # (n, T, K, 2) at 64 px
    if size == 32:
        centres = (centres - 0.5) / 2  # a 32-px pixel i covers 64-px pixels 2i and 2i + 1
    videos = videos[:, :, 0] if not color else videos.permute(0, 1, 3, 4, 2)
    return MovingMNIST(videos.contiguous().numpy(), labels[pick.numpy()].astype(np.int64),
                       centres.float().numpy())
