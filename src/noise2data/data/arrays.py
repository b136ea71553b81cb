"""Read an array of samples ``(N, *D)`` from .npy, .npz, .pt or .csv, with validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError

ARRAY_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv")


def _pick(named: dict, key: str | None, path: Path) -> object:
    names = sorted(named)
    if key is not None:
        if key not in named:
            raise UserError(f"{path}: no array named '{key}' (it holds: {', '.join(names) or 'nothing'})")
        return named[key]
    if len(names) == 1:
        return named[names[0]]
    raise UserError(f"{path} holds several arrays ({', '.join(names)}): choose one with --key NAME")


def _read_csv(path: Path) -> np.ndarray:
    with path.open() as f:
        first = f.readline()
    try:
        [float(v) for v in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    try:
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise UserError(f"{path}: not a numeric CSV ({exc}); give one sample per row, comma separated") from None


def read_array(path: str | Path, key: str | None = None) -> np.ndarray | Tensor:
    """Read the raw array from a file, choosing the loader by suffix (no validation)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file not found: {path}")
    if not path.is_file():
        raise UserError(f"data path is not a file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return np.asarray(_pick(dict(z), key, path))
        if suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = _pick(obj, key, path)
            if not isinstance(obj, Tensor | np.ndarray):
                raise UserError(f"{path}: expected a tensor (or a dict of tensors), found {type(obj).__name__}")
            return obj
        if suffix == ".csv":
            return _read_csv(path)
    except UserError:
        raise
    except Exception as exc:  # corrupt or unreadable file: say which and why, in one line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read {path} as {suffix}: {msg}") from None
    raise UserError(f"unsupported data file type '{suffix}' for {path}: use one of {', '.join(ARRAY_SUFFIXES)}")


def validate_samples(arr: np.ndarray | Tensor, source: str) -> Tensor:
    """Check an array of samples and return it as float32 ``(N, *D)``.

    Raises a one-line :class:`UserError` for a non-numeric dtype, a missing batch dimension,
    fewer than 2 samples, or NaN/Inf values (with the index of the first bad sample).
    """
    t = torch.from_numpy(np.ascontiguousarray(arr)) if isinstance(arr, np.ndarray) else arr
    if t.dtype == torch.bool or t.is_complex():
        raise UserError(f"{source}: dtype {t.dtype} is not a real number type; convert the array to float")
    if t.ndim < 2:
        raise UserError(
            f"{source}: expected an array of samples (N, *D), got shape {tuple(t.shape)}; "
            "for N scalars reshape to (N, 1)"
        )
    if t.shape[0] < 2:
        raise UserError(f"{source}: need at least 2 samples, got {t.shape[0]}")
    t = t.float()
    bad = ~torch.isfinite(t.flatten(1)).all(1)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise UserError(f"{source}: {int(bad.sum())} samples contain NaN or Inf (first at index {first}); "
                        "remove or impute them")
    return t


def load_array(path: str | Path, key: str | None = None) -> Tensor:
    """Read and validate samples from a file: float32 ``(N, *D)``."""
    arr = read_array(path, key)
    if isinstance(arr, np.ndarray) and arr.dtype.kind not in "iuf":
        raise UserError(f"{path}: dtype {arr.dtype} is not numeric; save the samples as a float array")
    return validate_samples(arr, str(path))


def load_labels(path: str | Path, n: int, key: str | None = None) -> Tensor:
    """Integer class labels ``(n,)`` for ``n`` samples, from the same file types as samples.

    Labels must be whole numbers from 0 (a CSV column or a ``(n, 1)`` array is accepted too).
    """
    arr = torch.as_tensor(np.asarray(read_array(path, key)))
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise UserError(f"{path}: expected {n} labels, one per sample, got an array of shape {tuple(arr.shape)}")
    if arr.dtype.is_floating_point:
        if not torch.isfinite(arr).all() or not torch.equal(arr, arr.round()):
            raise UserError(f"{path}: labels must be whole numbers (class indices 0, 1, ...)")
    elif arr.dtype == torch.bool or arr.dtype.is_complex:
        raise UserError(f"{path}: labels must be integers, got {arr.dtype}")
    arr = arr.long()
    if int(arr.min()) < 0:
        raise UserError(f"{path}: labels must be >= 0 (class indices), found {int(arr.min())}")
    return arr


def load_conditions(path: str | Path, n: int, key: str | None = None) -> Tensor:
    """Vector conditions ``(n, k)`` (float32, finite) for ``n`` samples: one row per sample.

    A CSV with k columns, or an ``(n, k)`` / ``(n,)`` array in .npy/.npz/.pt; ``(n,)`` means k = 1.
    """
    arr = read_array(path, key)
    if isinstance(arr, np.ndarray) and arr.dtype.kind not in "iuf":
        raise UserError(f"{path}: dtype {arr.dtype} is not numeric; save the conditions as a float array")
    t = torch.as_tensor(np.asarray(arr)) if isinstance(arr, np.ndarray) else arr
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or len(t) != n:
        raise UserError(f"{path}: expected conditions of shape ({n}, k), one row per sample, got {tuple(t.shape)}")
    return validate_samples(t, str(path))


def open_npz(path: str | Path, what: str) -> tuple[np.lib.npyio.NpzFile, set[str]]:
    """An .npz file and its array names; a one-line error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
        return z, set(z.files)
    except Exception as exc:
        raise UserError(f"cannot read {path} as .npz: {exc}") from None
