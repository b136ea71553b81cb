"""Labelled image datasets read from local files: MNIST-style IDX files and scikit-learn's digits.

Images come back channels-first ``(N, C, H, W)`` as float32 in their stored units, with the
value range they live in (``(0, 255)`` for IDX bytes, ``(0, 16)`` for digits), and integer labels
``(N,)``. Nothing is downloaded: IDX files are read from the folder the user names.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError, require

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@dataclass(frozen=True)
class LabelledImages:
    """``images: (N, C, H, W)`` float32 in ``value_range`` units, ``labels: (N,)`` int64."""

    images: Tensor
    labels: Tensor
    value_range: tuple[float, float]
    name: str

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def to_unit(self, x: Tensor | None = None) -> Tensor:
        """Map images (these, or ``x`` in the same units) linearly from ``value_range`` to [-1, 1]."""
        lo, hi = self.value_range
        x = self.images if x is None else x
        return (x - lo) / (hi - lo) * 2 - 1


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX array (the MNIST format), gzipped or not."""
    path = Path(path)
    if not path.is_file():
        gz = path.with_name(path.name + ".gz")
        if not gz.is_file():
            raise UserError(f"IDX file not found: {path} (nor {gz.name})")
        path = gz
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != need:
        raise UserError(f"{path} is truncated or corrupted: expected {need} data bytes, found {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_mnist(folder: str | Path, split: str = "train") -> LabelledImages:
    """MNIST (or Fashion-MNIST) from a folder of the four canonical IDX files (``.gz`` or not)."""
    if split not in MNIST_FILES:
        raise UserError(f"unknown split '{split}': expected train or test")
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"MNIST folder not found: {folder}")
    img_name, lab_name = MNIST_FILES[split]
    images, labels = read_idx(folder / img_name), read_idx(folder / lab_name)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{folder}: images {images.shape} and labels {labels.shape} do not pair up")
    images_t = torch.from_numpy(images.astype(np.float32))[:, None]
    return LabelledImages(images_t, torch.from_numpy(labels.astype(np.int64)), (0.0, 255.0), f"mnist-{split}")


def load_digits_images() -> LabelledImages:
    """scikit-learn's 1,797 8x8 digits (16 grey levels), ``(1797, 1, 8, 8)`` in units of 0..16."""
    datasets = require("sklearn.datasets", "data", "the digits dataset")
    d = datasets.load_digits()
    images = torch.from_numpy(d.images.astype(np.float32))[:, None]
    return LabelledImages(images, torch.from_numpy(d.target.astype(np.int64)), (0.0, 16.0), "digits")


def load_labelled_images(spec: str, split: str = "train") -> LabelledImages:
    """``digits`` or ``mnist:FOLDER`` (the given ``split``)."""
    if spec == "digits":
        return load_digits_images()
    if spec.startswith("mnist:"):
        return load_mnist(spec[6:], split)
    raise UserError(f"unknown image dataset '{spec}': expected digits or mnist:FOLDER")
