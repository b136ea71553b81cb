"""Metrics between samples, each quoted beside its noise floor (the ``metrics`` extra for W2)."""

from __future__ import annotations

from .compare import (
    DEFAULT_METRICS,
    SAMPLE_METRICS,
    SPECS,
    MetricResult,
    check_metric_names,
    combine,
    compare,
    evaluate_pair,
    format_results,
    ratio_interval,
)
from .debiased import DEBIASED, energy_u, mmd2_u, with_interval
from .distances import energy_distance, mmd, sliced_w2
from .precision_recall import precision_recall
from .wasserstein import w2_exact

__all__ = [
    "DEBIASED", "DEFAULT_METRICS", "SAMPLE_METRICS", "SPECS", "MetricResult", "check_metric_names", "combine",
    "compare",
    "energy_distance", "evaluate_pair", "format_results", "mmd", "precision_recall", "ratio_interval", "sliced_w2",
    "w2_exact",
    "energy_u", "mmd2_u", "with_interval",
]
