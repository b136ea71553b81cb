"""Video metrics: PSNR and SSIM per frame, digit centres and their motion, digit identity over time.

Frames are ``(N, T, C, H, W)`` in [0, 1]. Centres are intensity-weighted (row, col) in pixels,
computed after a small floor (0.1) is subtracted so that faint noise does not pull them; the
generator's true centres (``MovingMNIST.centers``) are computed the same way on clean digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FLOOR = 0.1


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per frame, ``(N, T, C, H, W)`` x2 -> ``(N, T)`` (capped at 100 dB)."""
    mse = (a.double() - b.double()).pow(2).flatten(2).mean(2)
    return (10 * torch.log10(1.0 / mse.clamp(min=1e-10))).float()


def frame_sse(a: Tensor, b: Tensor) -> Tensor:
    """Squared error summed over each frame's pixels and channels, ``(N, T, C, H, W)`` x2 -> ``(N, T)``
    (OpenSTL's "MSE" for Moving MNIST, with pixels in [0, 1])."""
    return (a.double() - b.double()).pow(2).flatten(2).sum(2).float()


def _gaussian(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x.pow(2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, *, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004; Gaussian window 11, sigma 1.5, data range 1) per frame:
    ``(N, T, C, H, W)`` x2 -> ``(N, T)``, the mean over the valid window positions and channels."""
    n, t, c, h, w = a.shape
    win = min(window, h, w)
    g = _gaussian(win, sigma)
    kernel = (g[:, None] * g[None]).expand(c, 1, win, win).contiguous()
    x, y = a.double().flatten(0, 1), b.double().flatten(0, 1)  # (N T, C, H, W)

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, kernel, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).view(n, t).float()


def centres(frames: Tensor) -> Tensor:
    """Intensity-weighted centre (row, col) of each frame ``(N, T, C, H, W)`` -> ``(N, T, 2)``."""
    grey = (frames.double().mean(2) - FLOOR).clamp(min=0)  # (N, T, H, W)
    mass = grey.sum((-2, -1)).clamp(min=1e-9)
    rows = torch.arange(grey.shape[-2], dtype=torch.float64)
    cols = torch.arange(grey.shape[-1], dtype=torch.float64)
    r = (grey.sum(-1) * rows).sum(-1) / mass
    c = (grey.sum(-2) * cols).sum(-1) / mass
    return torch.stack([r, c], -1).float()


def speeds(c: Tensor) -> Tensor:
    """Frame-to-frame speeds (pixels/frame) of centres ``(N, T, 2)`` -> ``(N, T - 1)``."""
    return (c[:, 1:] - c[:, :-1]).norm(dim=-1)


def wasserstein_1d(a: Tensor, b: Tensor, grid: int = 2000) -> float:
    """W1 between two samples of real numbers (any sizes): the mean gap between their quantile functions."""
    q = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    qa = torch.quantile(a.double().flatten(), q)
    qb = torch.quantile(b.double().flatten(), q)
    return float((qa - qb).abs().mean())


def crop_size(height: int) -> int:
    """The side in pixels of a 28-pixel MNIST digit in a frame of ``height`` rendered from Moving MNIST's 64
    canvas (14 at 32x32)."""
    return max(4, round(28 * height / 64))


def digit_crops(frames: Tensor, centre: Tensor, out: int | None = 28) -> Tensor:
    """The digit around each frame's centre: ``(N, T, C, H, W)`` in [0, 1], ``centre: (N, T, 2)`` -> grey
    ``(N * T, 1, out, out)`` in [0, 1].

    A 28-pixel MNIST digit occupies :func:`crop_size` pixels of a frame rendered at H, so that square is cut
    out around the centre, and resized to ``out`` (MNIST's framing by default; ``None``: kept at the clips'
    own scale, as the judge trained on the clips' digits takes it).
    """
    n, t, _, h, w = frames.shape
    size = crop_size(h)
    grey = frames.mean(2).flatten(0, 1)[:, None]  # (N T, 1, H, W)
    pad = size
    padded = F.pad(grey, (pad, pad, pad, pad))
    c = centre.flatten(0, 1).round().long() + pad - size // 2  # top-left in the padded frame
    rows = c[:, 0, None] + torch.arange(size)  # (N T, size)
    cols = c[:, 1, None] + torch.arange(size)
    rows = rows.clamp(0, padded.shape[-2] - 1)
    cols = cols.clamp(0, padded.shape[-1] - 1)
    idx = torch.arange(len(grey))[:, None, None]
    crops = padded[idx, 0, rows[:, :, None], cols[:, None, :]][:, None]  # (N T, 1, size, size)
    if out is not None and size != out:
        crops = F.interpolate(crops, size=(out, out), mode="bilinear", align_corners=False, antialias=size > out)
    return crops.clamp(0, 1)


def digit_crop_set(clips: Tensor, labels: Tensor, centers: Tensor, frames_per_clip: int = 4,
                   seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Labelled digits cut from clips at their own scale, to train the identity judge on digits as the clips
    draw them (an MNIST classifier reads a 14-pixel digit, blown up to 28, right in only 85-88% of real frames).

    ``clips: (N, T, C, H, W)`` in [0, 1], ``labels: (N, K)``, ``centers: (N, T, K, 2)`` (the generator's) ->
    ``(crops (M, 1, s, s) in [0, 1], labels (M,), clip (M,))``: every digit in ``frames_per_clip`` frames of each
    clip drawn at random (frames of a clip are near copies of one another), and the clip each came from, so that
    a validation split can hold whole clips out."""
    n, frames = clips.shape[:2]
    g = torch.Generator().manual_seed(seed)
    k = min(frames_per_clip, frames)
    pick = torch.rand(n, frames, generator=g).argsort(1)[:, :k]  # (N, k) distinct frames per clip
    rows = torch.arange(n)[:, None]
    chosen = clips[rows, pick]  # (N, k, C, H, W)
    crops, ys, owner = [], [], []
    for d in range(labels.shape[1]):
        crops.append(digit_crops(chosen, centers[rows, pick, d], out=None))  # (N k, 1, s, s)
        ys.append(labels[:, d, None].expand(n, k).reshape(-1))
        owner.append(rows.expand(n, k).reshape(-1))
    return torch.cat(crops), torch.cat(ys).long(), torch.cat(owner)


NO_DIGIT = -1  # the class of a crop with too little ink to hold a digit
MIN_INK = 0.01  # mean intensity in [0, 1] of a 28x28 crop below which it is empty (an MNIST digit: ~0.13)


def blank(crops: Tensor) -> Tensor:
    """``crops: (M, 1, 28, 28)`` in [0, 1] -> ``(M,)`` True where the crop is (nearly) empty: a classifier
    gives an empty crop some class, and a clip of empty frames must not count as keeping its digit."""
    return crops.flatten(1).mean(1) < MIN_INK


def identity(classes: Tensor, truth: Tensor | None = None) -> dict[str, float]:
    """``classes: (N, T)`` predicted per frame (:data:`NO_DIGIT` where a frame holds none) -> the share of
    clips whose class never changes and is a digit in every frame, the share of frames with no digit,
    and (with ``truth: (N,)``) the share that keeps the true class in every frame."""
    constant = (classes == classes[:, :1]).all(1) & (classes != NO_DIGIT).all(1)
    out = {"identity_kept": float(constant.double().mean()),
           "no_digit_frames": float((classes == NO_DIGIT).double().mean())}
    if truth is not None:
        out["identity_true"] = float((classes == truth[:, None]).all(1).double().mean())
    return out


def summary(per_frame: Tensor) -> dict[str, float | list[float]]:
    """Mean (and the mean of each frame) of a per-frame metric ``(N, T')``."""
    return {"mean": float(per_frame.double().mean()), "per_frame": [round(float(v), 4) for v in per_frame.mean(0)]}
