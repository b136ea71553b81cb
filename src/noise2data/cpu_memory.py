"""Keep freed memory in the process on Linux, so large CPU tensors do not cost page faults on every use.

glibc hands every freed block above its mmap threshold straight back to the kernel, and maps fresh
zeroed pages for the next one; a network whose activations are tens of MB (the EGNN's pair tensors,
``(B, N, N, H)``) then spends much of its time in the kernel: sampling 200 QM9-sized molecules at 50 NFE
took 12.9 s (8.4 s of it system time) against 7.3 s with freed blocks kept (0.3 s system time). This
raises the mmap threshold to glibc's maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB. It is a
process-wide allocator setting, applied by the CLI; a library user can call it once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> bool:
    """Apply the setting; True when it took effect (glibc on Linux), False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def release_freed_memory() -> bool:
    """Return the free pages that glibc keeps (every arena, not only the heap's top) to the kernel, so the
    resident set counts live memory alone; True when it ran (glibc on Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False
