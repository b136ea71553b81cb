"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU, NCCL on GPU).

How noise2data splits a step so that N processes compute what one process would: every rank
draws the *global* batch's indices, times and noise from the same seeded generator (so the
random stream, and with it every RNG state in a checkpoint, is independent of the world size),
applies the coupling to the global batch, and then runs the network on its own contiguous slice
of ``global_batch / world_size`` samples. DistributedDataParallel averages the gradients of the
slice means, which is the gradient of the global mean. The cost is that each rank draws the
whole batch's random numbers (cheap next to the network), and the gain is that a run checkpointed
with 2 processes resumes with 1, or the reverse, on exactly the same data order.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``; ``is_main`` writes files."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def part(self, global_batch: int) -> tuple[int, int]:
        """This rank's slice ``[start, stop)`` of a global batch (which must split evenly)."""
        if global_batch % self.world_size:
            raise UserError(f"the batch size {global_batch} does not split over {self.world_size} processes: "
                            f"use a multiple of {self.world_size}")
        b = global_batch // self.world_size
        return self.rank * b, (self.rank + 1) * b

    def mean(self, value: Tensor) -> Tensor:
        """The mean of a tensor over all ranks (the tensor itself when not distributed)."""
        if not self.active:
            return value
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def launched_by_torchrun() -> bool:
    """True inside a process that ``torchrun`` started with more than one worker."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun set up; returns the context and this rank's device name.

    ``device`` ``auto``/``cuda`` become ``cuda:LOCAL_RANK`` (NCCL) when CUDA is there, else the CPU
    (gloo). Outside torchrun this is a no-op returning a single-process context.
    """
    if not launched_by_torchrun():
        return DistContext(), device
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not use_cuda:
        raise UserError(f"--device {device} under torchrun, but CUDA is not available: use --device cpu")
    if use_cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    return DistContext(rank, world, local), device


def shutdown_distributed() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave_worker(code: int) -> NoReturn:
    """End a torchrun worker whose work is done, skipping the interpreter's finalisation.

    With gloo (torch 2.13), a worker that finished cleanly and left its process group can still abort
    while the interpreter tears down ("terminate called without an active exception", SIGABRT: a
    C++ thread outlives it), about one run in four on a 2-core machine; torchrun then reports the whole job as failed
    although every checkpoint was written. Everything is flushed and synced before the exit.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def current_context() -> DistContext:
    """The context of an already initialised process group (single process otherwise)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()
