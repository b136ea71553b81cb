"""The registry of modalities: one line per kind of data.

Each entry names the module and the :class:`~noise2data.modalities.base.Modality` instance that
declares it; modules are imported on first use, so an unused modality costs nothing (and its
optional dependencies are not needed). Order matters only for matching ``--data`` specs: the
first modality whose ``matches`` accepts a spec owns it, and vectors (any array file, any toy
name) come last.
"""

from __future__ import annotations

import importlib
from functools import cache

from ..errors import UserError
from .base import Modality

MODALITIES: dict[str, str] = {
    "images": "noise2data.modalities.images:IMAGES",
    "molecules": "noise2data.molecules.modality:MOLECULES",
    "video": "noise2data.video.modality:VIDEO",
    "vectors": "noise2data.modalities.vectors:VECTORS",
}


@cache
def get_modality(name: str) -> Modality:
    """The modality registered under ``name``."""
    if name not in MODALITIES:
        raise UserError(f"unknown modality '{name}': expected one of {', '.join(MODALITIES)}")
    module, _, attr = MODALITIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def all_modalities() -> list[Modality]:
    return [get_modality(name) for name in MODALITIES]


def modality_for_spec(spec: str) -> Modality:
    """The modality that owns a ``--data`` specification."""
    for m in all_modalities():
        if m.matches(spec):
            return m
    raise UserError(f"no kind of data reads '{spec}'")  # vectors accept any spec, so only a broken registry


def modality_of(config: dict) -> Modality:
    """The modality of a run from its config.json; older runs (no ``modality`` entry) are recognised."""
    if "modality" in config:
        return get_modality(config["modality"])
    for m in all_modalities():
        if m.owns(config):
            return m
    return get_modality("vectors")


def all_models() -> dict[str, tuple[type, type]]:
    """Models brought by modalities (beyond the shared ones in :mod:`noise2data.models`)."""
    out: dict[str, tuple[type, type]] = {}
    for m in all_modalities():
        out.update(m.model_classes())
    return out


def model_names() -> list[str]:
    """Every model name some modality accepts, in registry order, without repeats."""
    return list(dict.fromkeys(name for m in all_modalities() for name in m.models))
