"""Exponential moving average of weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the average."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    ema.eval()
    return ema


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: ``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    e_params = list(ema.parameters())
    m_params = list(model.parameters())
    torch._foreach_lerp_(e_params, m_params, 1.0 - decay)
    for e_buf, m_buf in zip(ema.buffers(), model.buffers(), strict=True):
        e_buf.copy_(m_buf)
