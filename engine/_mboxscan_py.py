"""Pure-Python twin of ``engine._mboxscan_c``: the literal search that cuts an mbox into messages.

Same names, arguments, results and errors as the native kernel; the tests run every case on both.

* :func:`find`: the offset of ``needle`` in ``data`` (bytes, bytearray, a memory map: any contiguous
  buffer) at or after ``start``, or -1; ``data.find(needle, start)`` for ``start >= 0``. A
  ``needle`` that is not ``bytes`` raises ``TypeError``; an empty one or a negative ``start``,
  ``ValueError``.

Here the regex engine's literal-prefix scan does the work: about twice as fast as ``bytes.find`` on
mail, whose frequent newlines and spaces defeat find's skip table. The native kernel looks for the
needle's first byte with ``memchr`` and compares the rest (the needles start with a newline, one per
line of mail): about five times faster again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

__all__ = ["features", "find"]


def features() -> dict:
    """What this implementation is: ``{"native": False}``."""
    return {"native": False}


@functools.cache
def _searcher(needle: bytes) -> Callable[..., re.Match[bytes] | None]:
    return re.compile(re.escape(needle)).search


def find(data: Any, needle: bytes, start: int) -> int:
    """Offset of ``needle`` in ``data`` at or after ``start``; -1 when there is none."""
    if not isinstance(needle, bytes):
        raise TypeError("find: needle must be bytes")
    if not needle:
        raise ValueError("find: empty needle")
    if start < 0:
        raise ValueError("find: negative start")
    m = _searcher(needle)(data, start)
    return -1 if m is None else m.start()
