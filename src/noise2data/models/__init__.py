"""Models: ``nn.Module``s with ``forward(x, t, cond=None)`` and a config dataclass."""

from __future__ import annotations

from dataclasses import asdict

from torch import nn

from ..errors import UserError
from .dit import DiT, DiTConfig
from .embeddings import FourierEmbedding, SinusoidalEmbedding
from .mlp import MLP, MLPConfig
from .unet import UNet, UNetConfig

MODELS = {"mlp": (MLP, MLPConfig), "unet": (UNet, UNetConfig), "dit": (DiT, DiTConfig)}


def model_classes(name: str) -> tuple[type, type]:
    """``(module class, config class)`` of a model: the shared ones here, or one a modality brings."""
    if name in MODELS:
        return MODELS[name]
    from ..modalities.registry import all_models  # modalities build on the shared models

    found = all_models()
    if name not in found:
        raise UserError(f"unknown model '{name}': expected one of {', '.join([*MODELS, *found])}")
    return found[name]


def model_config_class(name: str) -> type:
    """The config dataclass of model ``name``."""
    return model_classes(name)[1]


def _config(config_dict: dict) -> tuple[type, object]:
    params = dict(config_dict)
    name = params.pop("name", "mlp")
    cls, cfg_cls = model_classes(name)
    try:
        return cls, cfg_cls(**params)
    except TypeError as exc:
        raise UserError(f"model config does not fit '{name}': {exc}") from None


def build_model(config_dict: dict) -> nn.Module:
    """Rebuild a model from ``{"name": ..., **config}`` (as stored in config.json)."""
    cls, config = _config(config_dict)
    return cls(config)


def complete_model_config(config_dict: dict) -> dict:
    """``config_dict`` with every field its config class has: fields added since it was written take their
    defaults, so configs of one model written by different versions compare equal."""
    return asdict(_config(config_dict)[1])


__all__ = [
    "MLP", "MODELS", "DiT", "DiTConfig", "FourierEmbedding", "MLPConfig", "SinusoidalEmbedding", "UNet", "UNetConfig",
    "build_model", "complete_model_config", "model_classes", "model_config_class",
]
