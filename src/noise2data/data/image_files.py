"""Images from the user's files: a folder of PNG/JPEG images (subfolders as classes) or an .npz.

Images come back channels-first in [-1, 1]. A folder is decoded once into memory as uint8 when it
fits under ``memory_limit`` bytes; above it (or with ``stream=True``) an :class:`ImageSource`
decodes only the files a batch asks for, so memory stays O(batch) at any dataset size.
:func:`fit_images` pads and resizes (e.g. MNIST 28 -> 32 for a 3-level U-Net).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError, require
from .arrays import open_npz

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MEMORY_LIMIT = 4 * 2**30  # bytes of uint8 pixels kept in memory before streaming


def fit_images(x: Tensor, pad: int = 0, size: int | None = None) -> Tensor:
    """Resize ``x: (B, C, H, W)`` in [-1, 1] to ``size x size`` (antialiased bilinear), then pad by
    ``pad`` pixels of background (-1) on every side."""
    if size is not None and tuple(x.shape[2:]) != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(-1, 1)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    return x


def scan_folder(root: str | Path) -> tuple[list[Path], Tensor | None, list[str]]:
    """Image files under ``root``: ``(files, labels (N,) or None, class names)``.

    With subfolders, each subfolder is a class (sorted by name) and its images (searched
    recursively) carry that label; images directly in ``root`` then are an error. Without
    subfolders, the images of ``root`` are one unlabelled set.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def images_in(folder: Path, recursive: bool) -> list[Path]:
        found = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    if not subdirs:
        files = images_in(root, False)
        if not files:
            raise UserError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files, None, []
    loose = images_in(root, False)
    if loose:
        raise UserError(f"{root} has both class subfolders and loose images (e.g. {loose[0].name}): "
                        "move the loose images into a class folder")
    files, labels, classes = [], [], []
    for d in subdirs:
        found = images_in(d, True)
        if found:
            labels += [len(classes)] * len(found)
            classes.append(d.name)
            files += found
    if not files:
        raise UserError(f"{root}: its subfolders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return files, torch.tensor(labels), classes


def _open(path: Path):  # noqa: ANN202 - a PIL image
    Image = require("PIL.Image", "data", "reading image files")
    try:
        img = Image.open(path)
        img.load()
        return img
    except Exception as exc:  # a corrupt or non-image file: say which
        raise UserError(f"cannot read {path} as an image ({type(exc).__name__}): remove or replace it") from None


def _probe(files: list[Path], resize: bool) -> tuple[int, int, int]:
    """``(C, H, W)`` of the set: 1 channel if every image is greyscale, else 3; one size unless resized."""
    Image = require("PIL.Image", "data", "reading image files")
    sizes, grey = {}, True
    for f in files if not resize else files[:64]:  # resized: only the colour mode matters
        try:
            with Image.open(f) as img:  # reads the header only
                sizes.setdefault(img.size, f)
                grey &= img.mode in ("1", "L", "I", "I;16", "F")
        except Exception as exc:
            raise UserError(f"cannot read {f} as an image ({type(exc).__name__}): remove or replace it") from None
        if len(sizes) > 1 and not resize:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise UserError(f"images have different sizes ({s1[0]}x{s1[1]} in {f1.name}, {s2[0]}x{s2[1]} in "
                            f"{f2.name}): pass --resize N to bring them all to N x N")
    w, h = next(iter(sizes))
    return (1 if grey else 3), h, w


def decode(path: Path, channels: int) -> Tensor:
    """One image as uint8 ``(C, H, W)``."""
    img = _open(path).convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).reshape(img.size[1], img.size[0], channels).permute(2, 0, 1)


class ImageSource:
    """Images of a folder decoded on demand: ``source[idx] -> (B, C, H, W)`` float32 in [-1, 1].

    Quacks like the tensor the training loop indexes (``len``, ``shape``, ``dtype``, ``to``,
    integer-tensor indexing); decoding runs in a thread pool (PIL releases the GIL).
    """

    def __init__(self, files: list[Path], channels: int, size: int | None, pad: int, native_hw: tuple[int, int],
                 workers: int = 4) -> None:
        self.files, self.channels, self.size, self.pad = files, channels, size, pad
        h, w = (size, size) if size else native_hw
        self.shape = torch.Size((len(files), channels, h + 2 * pad, w + 2 * pad))
        self.dtype, self.device, self.ndim = torch.float32, torch.device("cpu"), 4
        self._pool = ThreadPoolExecutor(max_workers=workers)

    def __len__(self) -> int:
        return len(self.files)

    def to(self, device: str | torch.device) -> ImageSource:
        self.device = torch.device(device)
        return self

    def __getitem__(self, idx: Tensor | int) -> Tensor:
        single = isinstance(idx, int)
        ids = [idx] if single else [int(i) for i in torch.as_tensor(idx).reshape(-1).cpu()]
        raw = list(self._pool.map(lambda i: decode(self.files[i], self.channels), ids))
        if self.size:
            raw = [fit_images(r[None].float() / 127.5 - 1, 0, self.size)[0] for r in raw]
            x = torch.stack(raw)
        else:
            if len({tuple(r.shape) for r in raw}) > 1:
                raise UserError("images of different sizes in one batch: pass --resize N")
            x = torch.stack(raw).float() / 127.5 - 1
        x = fit_images(x, self.pad).to(self.device)
        return x[0] if single else x


def load_image_folder(root: str | Path, *, size: int | None = None, pad: int = 0, stream: bool = False,
                      memory_limit: int = MEMORY_LIMIT) -> tuple[Tensor | ImageSource, Tensor | None, list[str]]:
    """``(images (N, C, H, W) in [-1, 1] or an ImageSource, labels (N,) or None, class names)``."""
    files, labels, classes = scan_folder(root)
    c, h, w = _probe(files, resize=size is not None)
    source = ImageSource(files, c, size, pad, (h, w))
    if stream or len(files) * c * (size or h) * (size or w) > memory_limit:
        return source, labels, classes
    return source[torch.arange(len(files))], labels, classes


def load_image_npz(path: str | Path, *, size: int | None = None, pad: int = 0) -> tuple[Tensor, Tensor | None]:
    """``images`` (and optional ``labels``) of an .npz: uint8 (0..255) or floats in [0, 1];
    ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in 1, 3, 4."""
    z, keys = open_npz(path, "image file")
    if "images" not in keys:
        raise UserError(f"{path} has no 'images' array (it has: {', '.join(sorted(keys))}); save it with "
                        "np.savez(path, images=..., labels=...)")
    x = np.asarray(z["images"])
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise UserError(f"{path}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1/3/4, "
                        f"got {z['images'].shape}")
    if x.dtype == np.uint8:
        t = torch.from_numpy(x.astype(np.float32)) / 127.5 - 1
    elif x.dtype.kind == "f":
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise UserError(f"{path}: float images must be finite and in [0, 1] (or save uint8 0..255), found "
                            f"{np.nanmin(x):.3g}..{np.nanmax(x):.3g}")
        t = torch.from_numpy(x.astype(np.float32)) * 2 - 1
    else:
        raise UserError(f"{path}: images must be uint8 or float, got {x.dtype}")
    labels = None
    if "labels" in keys:
        lab = np.asarray(z["labels"]).reshape(-1)
        if len(lab) != len(t) or lab.dtype.kind not in "iu" or (len(lab) and lab.min() < 0):
            raise UserError(f"{path}: labels must be {len(t)} integers >= 0, got {lab.dtype} {z['labels'].shape}")
        labels = torch.from_numpy(lab.astype(np.int64))
    return fit_images(t, pad, size), labels
