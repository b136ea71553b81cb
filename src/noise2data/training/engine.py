"""How a training step runs on the hardware: precision, compilation, data parallelism, and the
checks that a checkpoint's weights, or a run's initial ones, belong to the model being trained.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError
from .config import TrainConfig
from .distributed import DistContext

MAX_SKIPS = 10  # consecutive non-finite steps tolerated with skip_nonfinite before the run stops
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def precision_context(precision: str, device: torch.device) -> tuple[Callable[[], AbstractContextManager],
                                                                       torch.amp.GradScaler | None]:
    """``(autocast factory, grad scaler or None)`` for ``fp32``, ``bf16`` or ``fp16`` on ``device``.

    fp16 has a narrow exponent range, so its gradients are scaled (and the scaler skips a step
    that overflows); bf16 has float32's range and needs no scaler.
    """
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = AUTOCAST_DTYPES[precision]
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise UserError("this GPU has no bf16 support: use --precision fp16 or fp32")
    if device.type == "cpu" and dtype == torch.float16:  # measured: moons MLP 3.1 steps/s against 50 in fp32
        print("noise2data: warning: fp16 autocast on the CPU runs many times slower than fp32 (few CPU fp16 "
              "kernels): use --precision bf16 or fp32 there", file=sys.stderr)

    def autocast() -> AbstractContextManager:
        return torch.autocast(device_type=device.type, dtype=dtype)

    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return autocast, scaler


def wrap_network(model: nn.Module, config: TrainConfig, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module the step calls: ``model``, compiled if asked, inside DDP when distributed.

    The caller keeps ``model`` itself for the optimiser, the EMA and checkpoints (they share the
    parameters), so saved state dicts never carry ``_orig_mod.`` or ``module.`` prefixes.
    """
    net = torch.compile(model) if config.compile else model
    if ctx.active:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    return net


def check_compatible(model: nn.Module, state: dict[str, Tensor], source: str | Path) -> None:
    """Raise a one-line error naming the first mismatch between ``model`` and stored weights."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        what = f"it lacks {missing[0]}" if missing else f"it has {extra[0]}, which the model does not"
        raise UserError(f"the weights in {source} belong to another model ({what}): use the model settings "
                        "the run was trained with, or a new --out")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"the weights in {source} belong to another model: {k} is {tuple(state[k].shape)} "
                            f"there and {tuple(v.shape)} here (a different width, depth or data shape)")


def load_initial_weights(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Start ``model`` from ``state``: every weight must be there, except a jump model's gap embedding
    (which starts at zero, so the model starts as the flow model it came from)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not {"gap", "gap_mlp"} & set(k.split("."))]
    extra = [k for k in state if k not in own]
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        what = (f"lacks {missing[0]}" if missing else f"has {extra[0]}, which this model does not" if extra
                else f"has {bad[0]} of shape {tuple(state[bad[0]].shape)}, here {tuple(own[bad[0]].shape)}")
        raise UserError(f"the initial weights do not fit this model (the source {what}): start from a run with "
                        "the same model and data shape")
    model.load_state_dict(state, strict=False)
