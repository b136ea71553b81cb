"""Data: toy distributions, Gaussian mixtures, array files, standardisation."""

from __future__ import annotations

from .arrays import load_array, load_labels, validate_samples
from .sources import is_generated, load_data, load_mixture, true_log_prob
from .standardize import Standardizer
from .toy import TOY_DATASETS, GaussianMixture, sample_toy

__all__ = [
    "TOY_DATASETS", "GaussianMixture", "Standardizer", "is_generated", "load_array", "load_data", "load_labels",
    "load_mixture", "sample_toy", "true_log_prob", "validate_samples",
]
