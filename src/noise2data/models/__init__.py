"""Models: ``nn.Module``s with ``forward(x, t, cond=None)`` and a config dataclass."""

from __future__ import annotations

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


def build_model(config_dict: dict) -> nn.Module:
    """Rebuild a model from ``{"name": ..., **config}`` (as stored in config.json)."""
    params = dict(config_dict)
    name = params.pop("name", "mlp")
    cls, cfg_cls = model_classes(name)
    try:
        return cls(cfg_cls(**params))
    except TypeError as exc:
        raise UserError(f"model config does not fit '{name}': {exc}") from None


__all__ = [
    "MLP", "MODELS", "DiT", "DiTConfig", "FourierEmbedding", "MLPConfig", "SinusoidalEmbedding", "UNet", "UNetConfig",
    "build_model", "model_classes", "model_config_class",
]
