"""Will a training step fit in memory? A probe before the first step.

A run too large for its machine should stop with a message, not be killed by the kernel's OOM killer
(on a CPU, with no word and no checkpoint) or fail in the middle of the night (on a GPU). Before the
first step, :func:`check_step_fits` runs one forward and backward pass at two small batches ``b`` and
``2b`` (``b = batch // 8``), measures the peak memory each adds, and extrapolates linearly to the
training batch (activations grow linearly with the batch; weights, gradients and the allocator's warm-up
are in both measurements). On a CPU the free blocks glibc keeps are returned to the kernel before each
measurement, so a probe cannot reuse them unseen. When the estimate plus a margin of 20 % exceeds the
memory available (CUDA: free plus what PyTorch holds unused; Linux: ``MemAvailable``), training stops
with the estimate and a batch that fits.
Elsewhere (no peak counter) it does nothing. The probe costs about half a step; it draws from its own
generator and leaves the weights, gradients and optimizer as they were. ``NOISE2DATA_NO_MEMORY_CHECK=1``
skips it (the estimate is an extrapolation and may be wrong for an unusual model).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import torch

from ..cpu_memory import release_freed_memory
from ..errors import UserError

GiB = 2**30
SKIP_ENV = "NOISE2DATA_NO_MEMORY_CHECK"
# what the probe does not see: the optimizer's first step, the allocator's fragmentation. Measured on the
# video U-Net (small preset, 64 x 64 x 16 frames, 2 CPU cores, 22.8 GiB free): batch 4 estimated 10.0 GiB and
# peaked at 11.6 GiB resident (1.5 GiB before the step); batch 8 estimated 18.6 GiB, refused (without the
# check it is OOM-killed at 24.3 GB); batch 7, the size the message suggests, ran at 19.2 GiB.
MARGIN = 1.2


def _status_kib(field: str, text: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE).group(1))


def _linux_peak(run: Callable[[], None]) -> int | None:
    """Bytes by which the process's peak resident memory exceeded its resident memory before ``run``;
    None where the peak cannot be reset (not Linux, or /proc/self/clear_refs not writable)."""
    release_freed_memory()  # freed blocks kept by the allocator would hide part of the peak
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set, to the current one
        before = _status_kib("VmRSS", Path("/proc/self/status").read_text())
    except (OSError, AttributeError):
        return None
    run()
    return max(0, _status_kib("VmHWM", Path("/proc/self/status").read_text()) - before) * 1024


def step_peak(run: Callable[[], None], device: torch.device) -> int | None:
    """Bytes of memory ``run()`` needs beyond what is in use before it, on ``device``; None if unknown."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type == "cpu":
        return _linux_peak(run)
    return None


def available_bytes(device: torch.device) -> int | None:
    """Memory a step can still take on ``device``; None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        try:
            return _status_kib("MemAvailable", Path("/proc/meminfo").read_text()) * 1024
        except (OSError, AttributeError):
            return None
    return None


def check_step_fits(step: Callable[[int], None], batch_size: int, device: torch.device,
                    what: str = "this model") -> int | None:
    """Raise :class:`UserError` when a training step at ``batch_size`` will not fit in ``device``'s memory.

    ``step(b)`` runs one forward and backward pass at batch ``b`` and leaves no state behind. Returns the
    estimated bytes (None where memory cannot be measured, or when skipped by ``NOISE2DATA_NO_MEMORY_CHECK``).
    """
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        return None
    avail = available_bytes(device)
    if avail is None:
        return None
    small = max(1, batch_size // 8)
    step(small)  # warm-up: lazy initialisation, gradient buffers, the allocator's first blocks
    p1 = step_peak(lambda: step(small), device)
    if p1 is None:
        return None
    if small >= batch_size:
        need = p1
    else:
        if 2 * p1 > avail:  # the second probe alone would not fit
            need = p1 * batch_size // small
        else:
            large = min(batch_size, 2 * small)
            p2 = step_peak(lambda: step(large), device)
            per_sample = max(p2 - p1, 0) / (large - small)
            need = int(p1 + (batch_size - small) * per_sample)
    if need * MARGIN > avail:
        per = max(need * MARGIN / batch_size, 1.0)
        fits = max(1, int(avail / per))
        raise UserError(
            f"a training step of {what} at batch {batch_size} needs about {need / GiB:.1f} GiB more memory "
            f"(measured at batches {small} and {min(batch_size, 2 * small)}, plus {MARGIN - 1:.0%} for what a probe "
            f"does not see); {avail / GiB:.1f} GiB are available "
            f"on {device}: lower --batch-size (about {fits} fits) or pick a smaller model or --preset "
            f"({SKIP_ENV}=1 skips this check)"
        )
    return need
