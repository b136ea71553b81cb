"""Video clips from the user's files: ``(N, T, H, W)`` or ``(N, T, H, W, C)`` arrays in .npy/.npz
(key ``videos``; optional ``labels`` and ``centers``) or a folder of GIFs (one clip per file).

Clips come back as the model sees them, ``(N, T, C, H, W)`` float32 in [-1, 1], with the units
of their source (uint8 or floats in [0, 1]; grey ``NHW`` or colour ``NHWC`` frames) so that samples
go back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.image_units import ImageUnits
from ..errors import UserError, require

GIF_SUFFIXES = (".gif",)


@dataclass
class VideoData:
    """``clips: (N, T, C, H, W)`` in [-1, 1]; ``labels: (N, K)`` or None; ``centers: (N, T, K, 2)`` or None."""

    clips: Tensor
    units: ImageUnits
    labels: Tensor | None = None
    centers: Tensor | None = None

    def __len__(self) -> int:
        return len(self.clips)


def clips_from_array(x: np.ndarray, source: str) -> tuple[Tensor, ImageUnits]:
    """Check and convert a video array; returns ``(clips (N, T, C, H, W) in [-1, 1], units)``."""
    if x.ndim == 4:
        x, layout = x[..., None], "NHW"
    elif x.ndim == 5 and x.shape[-1] in (1, 3, 4):
        layout = "NHWC"
    else:
        raise UserError(f"{source}: video arrays are (N, T, H, W) or (N, T, H, W, C) with C in 1/3/4, got shape "
                        f"{x.shape}" + (" (a 3-D array is a set of images: use images:FILE.npz)" if x.ndim == 3
                                         else ""))
    if x.shape[1] < 2:
        raise UserError(f"{source}: clips need at least 2 frames, got {x.shape[1]}")
    if x.dtype == np.uint8:
        t, units = torch.from_numpy(x.astype(np.float32)) / 127.5 - 1, ImageUnits("uint8", 0.0, 255.0, layout)
    elif x.dtype.kind == "f":
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise UserError(f"{source}: float videos must be finite and in [0, 1] (or save uint8 0..255)")
        t, units = torch.from_numpy(x.astype(np.float32)) * 2 - 1, ImageUnits("float32", 0.0, 1.0, layout)
    else:
        raise UserError(f"{source}: videos must be uint8 or float, got {x.dtype}")
    return t.permute(0, 1, 4, 2, 3).contiguous(), units


def read_gif(path: Path) -> np.ndarray:
    """Frames of one GIF as uint8 ``(T, H, W, 3)``."""
    Image = require("PIL.Image", "data", "reading GIF clips")
    try:
        with Image.open(path) as img:
            frames = []
            for k in range(getattr(img, "n_frames", 1)):
                img.seek(k)
                frames.append(np.asarray(img.convert("RGB")))
    except Exception as exc:  # a corrupt or non-GIF file: say which
        raise UserError(f"cannot read {path} as a GIF: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    return np.stack(frames)


def load_gif_folder(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in GIF_SUFFIXES)
    if not files:
        raise UserError(f"{folder} holds no GIF clips (*.gif): one clip per file")
    clips = [read_gif(f) for f in files]
    shapes = {c.shape for c in clips}
    if len(shapes) > 1:
        a, b = sorted(shapes)[:2]
        raise UserError(f"{folder}: clips differ in frames or size ({a} vs {b}): make them all alike")
    x = np.stack(clips)  # (N, T, H, W, 3)
    grey = (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()
    return x[..., 0] if grey else x


def load_video(target: str | Path) -> VideoData:
    """Clips from an .npy/.npz file or a folder of GIFs (see the module docstring)."""
    target = Path(target)
    if target.is_dir():
        clips, units = clips_from_array(load_gif_folder(target), str(target))
        return VideoData(clips, units)
    if not target.is_file():
        raise UserError(f"video file not found: {target} (make one with 'noise2data data moving-mnist ...')")
    labels = centers = None
    try:
        if target.suffix.lower() == ".npz":
            with np.load(target, allow_pickle=False) as z:
                if "videos" not in z.files:
                    raise UserError(f"{target} has no 'videos' array (it has: {', '.join(z.files)}); save it with "
                                    "np.savez(path, videos=...)")
                arr = z["videos"]
                labels = torch.from_numpy(z["labels"].astype(np.int64)) if "labels" in z.files else None
                centers = torch.from_numpy(z["centers"].astype(np.float32)) if "centers" in z.files else None
        elif target.suffix.lower() == ".npy":
            arr = np.load(target, allow_pickle=False)
        else:
            raise UserError(f"video files are .npy, .npz or a folder of GIFs; got {target}")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot read {target}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    clips, units = clips_from_array(arr, str(target))
    if labels is not None:
        labels = labels.reshape(len(clips), -1)
    if centers is not None and tuple(centers.shape[:2]) != tuple(clips.shape[:2]):
        raise UserError(f"{target}: centers {tuple(centers.shape)} do not match {len(clips)} clips of "
                        f"{clips.shape[1]} frames")
    return VideoData(clips, units, labels, centers)


def clips_to_user(clips: Tensor, units: ImageUnits) -> np.ndarray:
    """Clips ``(N, T, C, H, W)`` in [-1, 1] -> the source's dtype, range and layout ``(N, T, H, W[, C])``."""
    n, t = clips.shape[:2]
    frames = units.to_user(clips.flatten(0, 1))
    return frames.reshape(n, t, *frames.shape[1:])
