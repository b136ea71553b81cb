"""p_init: the standard Gaussian N(0, I) over tensors of any shape."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def standard_normal(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``x0 ~ N(0, I)`` of the given shape, e.g. ``(B, *D)``.

    Args:
        shape: the full shape, batch first.
        generator: a ``torch.Generator`` for reproducible draws (on ``device``).
        device: where to allocate; defaults to the generator's device, else CPU.
        dtype: floating dtype of the result.
    """
    if device is None and generator is not None:
        device = generator.device
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def standard_normal_log_prob(x: Tensor) -> Tensor:
    """log N(x; 0, I) summed over every dimension but the batch: ``(B, *D) -> (B,)``."""
    d = x[0].numel()
    return -0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)
