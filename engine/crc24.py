"""CRC-24 of OpenPGP ASCII armor (RFC 9580 §6.1): generator 0x864CFB, initial value 0xB704CE.

The check value of ``b"123456789"`` is 0x21CF02. Pass a previous result as ``crc`` to continue over more
data: ``crc24(b, crc24(a)) == crc24(a + b)``.
"""

from __future__ import annotations

from typing import Any

from engine import _native

CRC24_INIT = 0xB704CE

__all__ = ["CRC24_INIT", "crc24"]


def crc24(data: Any, crc: int = CRC24_INIT) -> int:
    """CRC-24 of ``data`` (bytes, bytearray, memoryview or any buffer), continuing from ``crc``."""
    return _native.kernel("armor").crc24(data, crc)
