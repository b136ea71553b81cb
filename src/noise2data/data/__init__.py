"""Data: toy distributions, Gaussian mixtures, array files, standardisation."""

from __future__ import annotations

from .arrays import load_array, load_conditions, load_labels, validate_samples
from .mixture import GaussianMixture
from .sources import image_dataset, is_generated, is_image_dataset, load_data, load_mixture, true_log_prob
from .standardize import Standardizer
from .toy import TOY_DATASETS, sample_toy

__all__ = [
    "GaussianMixture", "Standardizer", "TOY_DATASETS", "image_dataset", "is_generated", "is_image_dataset",
    "load_array", "load_conditions", "load_data", "load_labels", "load_mixture", "sample_toy", "true_log_prob",
    "validate_samples",
]
