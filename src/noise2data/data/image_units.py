"""The units and layout an image dataset came in, so samples go back to the user the same way.

Models see images channels-first in [-1, 1]. A uint8 source (IDX files, image folders, a uint8
.npz) gets uint8 samples back; a float source gets floats in its own range ([0, 1] for an .npz,
0..16 for scikit-learn's digits); the layout is the source's: ``NHW`` (grey), ``NHWC`` or ``NCHW``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError

LAYOUTS = ("NHW", "NHWC", "NCHW")


@dataclass(frozen=True)
class ImageUnits:
    """``dtype`` (``uint8`` or ``float32``), value range ``[low, high]`` and ``layout`` of a source."""

    dtype: str = "float32"
    low: float = -1.0
    high: float = 1.0
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.dtype not in ("uint8", "float32") or self.layout not in LAYOUTS or not self.high > self.low:
            raise UserError(f"bad image units {asdict(self)}: dtype uint8/float32, layout one of {LAYOUTS}, high > low")

    def to_user(self, x: Tensor) -> np.ndarray:
        """Images ``x: (N, C, H, W)`` in [-1, 1] -> the source's dtype, range and layout."""
        y = (x.detach().float().cpu().clamp(-1, 1) + 1) / 2 * (self.high - self.low) + self.low
        if self.dtype == "uint8":
            y = y.round().clamp(0, 255).to(torch.uint8)
        if self.layout == "NHW":
            if y.shape[1] != 1:
                raise UserError(f"layout NHW holds grey images, these have {y.shape[1]} channels")
            y = y[:, 0]
        elif self.layout == "NHWC":
            y = y.permute(0, 2, 3, 1)
        return y.contiguous().numpy()

    def to_dict(self) -> dict:
        return asdict(self)


RAW = ImageUnits()  # the model's own tensor: float32 in [-1, 1], channels first


def image_units(spec: str, channels: int, *, probe: bool = True) -> ImageUnits:
    """The units of an image dataset specification whose images have ``channels`` channels.

    ``probe=False`` decides from the specification alone (for runs written before units were
    recorded): an .npz then maps to :data:`RAW`, since its dtype is not known without the file.
    """
    if spec == "digits":
        return ImageUnits("float32", 0.0, 16.0, "NHW")
    if spec.startswith("mnist:"):
        return ImageUnits("uint8", 0.0, 255.0, "NHW")
    target = spec.partition(":")[2]
    if target.lower().endswith(".npz"):
        if not probe:
            return RAW
        with np.load(target, allow_pickle=False) as z:
            arr = z["images"]
            dtype, shape = arr.dtype, arr.shape
        uint8 = dtype == np.uint8
        if len(shape) == 3:
            layout = "NHW"
        else:
            layout = "NHWC" if shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4) else "NCHW"
        return ImageUnits("uint8" if uint8 else "float32", 0.0, 255.0 if uint8 else 1.0, layout)
    return ImageUnits("uint8", 0.0, 255.0, "NHW" if channels == 1 else "NHWC")  # a folder of image files
