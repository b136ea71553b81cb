"""Standardisation: train in standard units, give samples back in data units."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserError

MODES = ("feature", "global", "none")


@dataclass(frozen=True)
class Standardizer:
    """x_std = (x - mean) / std with ``mean, std`` of shape ``D`` (broadcast over the batch).

    ``feature`` mode keeps one mean/std per coordinate; ``global`` one scalar pair for the whole
    array (natural for images); ``none`` is the identity. A coordinate with zero spread gets
    std 1, so constant features pass through unchanged instead of dividing by zero.
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, x: Tensor, mode: str = "feature") -> Standardizer:
        """Estimate the statistics from samples ``x: (N, *D)``."""
        if mode not in MODES:
            raise UserError(f"unknown standardisation '{mode}': expected one of {', '.join(MODES)}")
        x = x.double()
        if mode == "none":
            return cls(torch.zeros(x.shape[1:]), torch.ones(x.shape[1:]))
        if mode == "global":
            mean, std = x.mean().expand(x.shape[1:]), x.std().expand(x.shape[1:])
        else:
            mean, std = x.mean(0), x.std(0)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        return cls(mean.float().contiguous(), std.float().contiguous())

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Standardizer:
        """The ``none`` mode for samples of ``shape``, without looking at data."""
        return cls(torch.zeros(shape), torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        """Data units -> standard units, ``(B, *D)``."""
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse(self, x: Tensor) -> Tensor:
        """Standard units -> data units, ``(B, *D)``."""
        return x * self.std.to(x) + self.mean.to(x)

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors to store with a run."""
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> Standardizer:
        return cls(state["mean"], state["std"])
