"""Time embeddings: sinusoidal (Transformer-style) and random Fourier features."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import UserError


class SinusoidalEmbedding(nn.Module):
    """t in [0, 1] -> [cos(1000 t w_k), sin(1000 t w_k)], w_k = 10000^(-k / half), ``(B,) -> (B, dim)``.

    The factor 1000 spreads [0, 1] over the range the classic embedding was designed for.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0, scale: float = 1000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise UserError(f"time embedding size must be an even number >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs * scale, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        args = t.to(self.freqs.dtype)[:, None] * self.freqs[None]  # (B, half)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, dim)


class SmoothEmbedding(SinusoidalEmbedding):
    """The sinusoidal embedding with frequencies up to 10 (not 1000) per unit of time: ``(B,) -> (B, dim)``.

    For jump models (MeanFlow), whose training target holds the network's derivative in t: with the
    classic 1000x scale that derivative is large and feeds back into the target until the loss blows
    up (measured on checkerboard: the loss reached 10^4 within 100 steps, then the model collapsed);
    at 10x MeanFlow trains stably, and a flow model loses little (W2 at 4 midpoint evaluations 1.16x
    the floor against 1.11x).
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim, scale=10.0)


class FourierEmbedding(nn.Module):
    """Random Fourier features [cos(2 pi t b_k), sin(2 pi t b_k)], b_k ~ N(0, scale^2), fixed.

    The frequencies are a buffer, so they are saved with the weights.
    """

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise UserError(f"time embedding size must be an even number >= 2, got {dim}")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(dim // 2, generator=g) * scale * 2 * math.pi)

    def forward(self, t: Tensor) -> Tensor:
        args = t.to(self.freqs.dtype)[:, None] * self.freqs[None]  # (B, dim / 2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, dim)


TIME_EMBEDDINGS = {"sinusoidal": SinusoidalEmbedding, "fourier": FourierEmbedding, "smooth": SmoothEmbedding}


def make_time_embedding(kind: str, dim: int) -> nn.Module:
    """A time embedding by name."""
    if kind not in TIME_EMBEDDINGS:
        raise UserError(f"unknown time embedding '{kind}': expected one of {', '.join(TIME_EMBEDDINGS)}")
    return TIME_EMBEDDINGS[kind](dim)
