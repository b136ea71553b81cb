"""Models: ``nn.Module``s with ``forward(x, t, cond=None)`` and a config dataclass."""

from __future__ import annotations

from ..errors import UserError
from .dit import DiT, DiTConfig
from .embeddings import FourierEmbedding, SinusoidalEmbedding
from .mlp import MLP, MLPConfig
from .unet import UNet, UNetConfig

MODELS = {"mlp": (MLP, MLPConfig), "unet": (UNet, UNetConfig), "dit": (DiT, DiTConfig)}


def build_model(config_dict: dict) -> MLP | UNet | DiT:
    """Rebuild a model from ``{"name": ..., **config}`` (as stored in config.json)."""
    params = dict(config_dict)
    name = params.pop("name", "mlp")
    if name == "egnn":  # molecules: imported here, since the molecules package builds on this one
        from ..molecules.egnn import EGNN, EGNNConfig

        return EGNN(EGNNConfig(**params))
    if name not in MODELS:
        raise UserError(f"unknown model '{name}': expected one of {', '.join(MODELS)}")
    cls, cfg_cls = MODELS[name]
    try:
        return cls(cfg_cls(**params))
    except TypeError as exc:
        raise UserError(f"model config does not fit '{name}': {exc}") from None


__all__ = [
    "MLP", "MODELS", "DiT", "DiTConfig", "FourierEmbedding", "MLPConfig", "SinusoidalEmbedding", "UNet", "UNetConfig",
    "build_model",
]
