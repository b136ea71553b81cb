"""Metrics between samples (the ``metrics`` extra)."""

from __future__ import annotations

from .wasserstein import w2_exact

__all__ = ["w2_exact"]
