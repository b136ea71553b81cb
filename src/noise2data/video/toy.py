"""A toy video with a known answer: one Gaussian blob moving at constant velocity, reflected at the
borders. Its centre is known in closed form at every frame, so a model that continues it can be
checked against the true path (and the contract test has video without MNIST files)."""

from __future__ import annotations

import torch
from torch import Tensor


def blob_paths(n: int, frames: int, size: int, speed: float, generator: torch.Generator,
               margin: float = 2.0) -> Tensor:
    """Centres ``(n, frames, 2)`` (row, col): constant velocity, reflected inside ``[margin, size - 1 - margin]``."""
    lo, hi = margin, size - 1 - margin
    pos = lo + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (hi - lo)
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * torch.pi
    vel = speed * torch.stack([torch.sin(angle), torch.cos(angle)], -1)
    out = torch.empty(n, frames, 2, dtype=torch.float64)
    for t in range(frames):
        out[:, t] = pos
        pos = pos + vel
        low, high = pos < lo, pos > hi
        pos = torch.where(low, 2 * lo - pos, torch.where(high, 2 * hi - pos, pos))
        vel = torch.where(low | high, -vel, vel)
    return out


def draw_blobs(centres: Tensor, size: int, width: float = 1.5) -> Tensor:
    """Frames ``(n, T, 1, size, size)`` in [0, 1] of Gaussian blobs at ``centres: (n, T, 2)``."""
    grid = torch.arange(size, dtype=torch.float64)
    dr = grid[None, None, :, None] - centres[..., 0, None, None]
    dc = grid[None, None, None, :] - centres[..., 1, None, None]
    return torch.exp(-(dr**2 + dc**2) / (2 * width**2)).float()[:, :, None]


def moving_blobs(n: int, frames: int = 8, size: int = 16, speed: float = 1.0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(clips (n, frames, 1, size, size) in [0, 1], centres (n, frames, 2))``."""
    g = torch.Generator().manual_seed(seed)
    centres = blob_paths(n, frames, size, speed, g)
    return draw_blobs(centres, size), centres.float()
