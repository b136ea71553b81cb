"""noise2data: flow matching and diffusion models on any tensor data."""

from __future__ import annotations

__version__ = "0.1.0"
