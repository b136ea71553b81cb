"""Kinds of data (modalities): one interface, one registry line each."""

from __future__ import annotations

from .base import EvalRequest, Modality, ReportRequest, SampleRequest, Section, TrainingSet
from .registry import MODALITIES, all_modalities, get_modality, modality_for_spec, modality_of

__all__ = [
    "MODALITIES", "EvalRequest", "Modality", "ReportRequest", "SampleRequest", "Section", "TrainingSet",
    "all_modalities", "get_modality", "modality_for_spec", "modality_of",
]
