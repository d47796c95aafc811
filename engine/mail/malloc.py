"""glibc malloc settings for archive workers: keep freed large buffers for the next message.

A worker handles one message after another, and a 2 MB attachment passes through several buffers of
about its size (the message, the entity to encrypt, ciphertext, armor, the PGP/MIME result). By default
glibc serves each from a fresh mmap and unmaps it on free, or trims the heap back, so every buffer
faults its pages in again: about a fifth of a worker's CPU on large mail here. An mmap threshold of
32 MiB (glibc's own ceiling for its adaptive threshold) with a trim threshold of 64 MiB keeps those
buffers in the heap for the next message. Peak memory stays what one message needs.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20

_done: bool | None = None


def keep_large_buffers() -> bool:
    """Apply the thresholds once per process; False where there is no glibc ``mallopt`` (musl, macOS)."""
    global _done
    if _done is None:
        _done = False
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
    return _done
