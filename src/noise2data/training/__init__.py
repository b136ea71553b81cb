"""Training: the loop, EMA, checkpoints, configuration."""

from __future__ import annotations

from .checkpoint import checkpoint_step, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig, resolve_device
from .ema import ema_update_, make_ema
from .loop import TrainResult, train, training_step_loss

__all__ = [
    "TrainConfig", "TrainResult", "checkpoint_step", "ema_update_", "latest_checkpoint", "list_checkpoints",
    "load_checkpoint", "make_ema", "resolve_device", "save_checkpoint", "train", "training_step_loss",
]
