"""Closed-form truths for testing (the oracle itself lives in the library: noise2data.paths.oracle)."""

from __future__ import annotations

import torch

from noise2data.paths import GaussianPath
from noise2data.paths.oracle import F64, MixtureOracle

__all__ = ["F64", "MixtureOracle", "two_blob_mixture"]


def two_blob_mixture(path: GaussianPath) -> MixtureOracle:
    """A 2-D, two-component, anisotropic mixture used across the tests."""
    means = torch.tensor([[-1.5, 0.5], [1.0, -0.5]], dtype=F64)
    covs = torch.tensor([[[0.30, 0.10], [0.10, 0.20]], [[0.25, -0.05], [-0.05, 0.40]]], dtype=F64)
    return MixtureOracle(means, covs, torch.tensor([0.4, 0.6], dtype=F64), path)
