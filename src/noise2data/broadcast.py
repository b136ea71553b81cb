"""The one broadcasting helper: per-sample scalars ``(B,)`` against data ``(B, *D)``."""

from __future__ import annotations

from torch import Tensor


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Reshape a per-sample tensor ``(B,)`` to ``(B, 1, ..., 1)`` with ``ndim`` dimensions in all.

    Args:
        v: ``(B,)`` per-sample values (a time, alpha_t, sigma_t, ...).
        ndim: number of dimensions of the data it multiplies, ``x.ndim`` for ``x: (B, *D)``.
    """
    if v.ndim > ndim:
        raise ValueError(f"cannot broadcast a {v.ndim}-d tensor to {ndim} dimensions")
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def expand_time(t: Tensor | float, x: Tensor) -> Tensor:
    """Return ``t`` as a ``(B,)`` tensor on ``x``'s device and dtype, for ``x: (B, *D)``.

    Accepts a Python float, a 0-d tensor or a ``(B,)`` tensor.
    """
    import torch

    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t
