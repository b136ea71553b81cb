"""Models: ``nn.Module``s with ``forward(x, t, cond=None)`` and a config dataclass."""

from __future__ import annotations

from ..errors import UserError
from .embeddings import FourierEmbedding, SinusoidalEmbedding
from .mlp import MLP, MLPConfig

MODELS = {"mlp": (MLP, MLPConfig)}


def build_model(config_dict: dict) -> MLP:
    """Rebuild a model from ``{"name": ..., **config}`` (as stored in config.json)."""
    params = dict(config_dict)
    name = params.pop("name", "mlp")
    if name not in MODELS:
        raise UserError(f"unknown model '{name}': expected one of {', '.join(MODELS)}")
    cls, cfg_cls = MODELS[name]
    try:
        return cls(cfg_cls(**params))
    except TypeError as exc:
        raise UserError(f"model config does not fit '{name}': {exc}") from None


__all__ = ["MLP", "MODELS", "FourierEmbedding", "MLPConfig", "SinusoidalEmbedding", "build_model"]
