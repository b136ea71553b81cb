"""Turn a ``--data`` specification into a tensor of samples ``(N, *D)``.

Specifications: a toy name (``checkerboard``, ``moons``, ``circles``, ``8gaussians``,
``spirals``), a labelled image set (``digits``, ``mnist:DIR``; images in [-1, 1]),
``gmm:FILE.json`` (a Gaussian mixture: ``{"means": ..., "covs": ..., "weights":
...}``), or the path of an array file (.npy, .npz, .pt, .csv).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError
from .arrays import ARRAY_SUFFIXES, load_array
from .mixture import GaussianMixture
from .suite import SUITE, suite_log_prob
from .toy import TOY_DATASETS, sample_toy


def load_mixture(path: str | Path) -> GaussianMixture:
    """A Gaussian mixture from a JSON file with keys ``means``, ``covs`` and optional ``weights``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Gaussian mixture file not found: {path}")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(spec, dict) or not {"means", "covs"} <= set(spec):
        raise UserError(f"{path}: expected a JSON object with 'means' and 'covs' (and optional 'weights')")
    return GaussianMixture.from_lists(spec["means"], spec["covs"], spec.get("weights"))


def is_image_dataset(spec: str) -> bool:
    """True for image datasets: ``digits``, ``mnist:DIR`` and ``images:FOLDER_OR_NPZ``."""
    return spec == "digits" or spec.startswith(("mnist:", "images:"))


def image_dataset(spec: str, split: str = "train", *, resize: int | None = None, pad: int = 0,
                  stream: bool = False) -> tuple[Tensor, Tensor | None]:
    """``(images (N, C, H, W) in [-1, 1], labels (N,) or None)`` of an image dataset specification.

    ``digits``, ``mnist:DIR`` (IDX files; ``split`` train or test), ``images:FILE.npz`` (arrays
    ``images`` and optional ``labels``) or ``images:FOLDER`` (subfolders as classes; with
    ``stream`` or when too large for memory, an :class:`ImageSource` that decodes per batch).
    Images are resized to ``resize x resize`` and padded by ``pad`` pixels when asked.
    """
    from .image_files import fit_images, load_image_folder, load_image_npz
    from .images import load_labelled_images

    if resize is not None and resize < 1 or pad < 0:
        raise UserError(f"--resize must be >= 1 and --pad >= 0, got {resize} and {pad}")
    if spec.startswith("images:"):
        target = spec[len("images:"):]
        if target.lower().endswith(".npz"):
            return load_image_npz(target, size=resize, pad=pad)
        data, labels, _ = load_image_folder(target, size=resize, pad=pad, stream=stream)
        return data, labels
    d = load_labelled_images(spec, split)
    return fit_images(d.to_unit().float(), pad, resize), d.labels


def is_generated(spec: str) -> bool:
    """True for data drawn in code (toy names, mixtures): fresh samples can be had at will."""
    return spec in TOY_DATASETS or spec.startswith("gmm:")


def load_data(spec: str, *, n: int = 100_000, seed: int = 0, key: str | None = None) -> Tensor:
    """Samples for a ``--data`` specification, float32 ``(N, *D)``.

    Args:
        spec: a toy name, ``gmm:FILE.json`` or an array file path.
        n: how many samples to draw for generated data (files give what they hold).
        seed: the seed for generated data.
        key: the array's name inside .npz/.pt files holding several.
    """
    g = torch.Generator().manual_seed(seed)
    if is_image_dataset(spec):
        return image_dataset(spec)[0]
    if spec in TOY_DATASETS:
        return sample_toy(spec, n, g)
    if spec.startswith("gmm:"):
        return load_mixture(spec[4:]).sample(n, g)
    if Path(spec).suffix.lower() in ARRAY_SUFFIXES or Path(spec).exists():
        return load_array(spec, key)
    raise UserError(
        f"unknown dataset '{spec}': give a toy name ({', '.join(TOY_DATASETS)}), digits, mnist:DIR, gmm:FILE.json, "
        f"or an array file ({', '.join(ARRAY_SUFFIXES)})"
    )


def checkerboard_log_prob(x: Tensor) -> Tensor:
    """log p of the checkerboard (uniform on 8 squares of side 2, total area 32): ``(B, 2) -> (B,)``."""
    inside = ((x >= -4) & (x < 4)).all(1)
    col, row = ((x[:, 0] + 4) // 2).long(), ((x[:, 1] + 4) // 2).long()
    dark = (col % 2) == (row % 2)
    return torch.where(inside & dark, torch.full_like(x[:, 0], -math.log(32.0)), torch.full_like(x[:, 0], -math.inf))


def true_log_prob(spec: str, x: Tensor) -> Tensor | None:
    """The exact data log-density of ``x`` where the law is known in closed form, else None."""
    if spec == "checkerboard":
        return checkerboard_log_prob(x)
    if spec in SUITE:
        return suite_log_prob(spec, x)
    if spec.startswith("gmm:"):
        return load_mixture(spec[4:]).log_prob(x)
    return None
