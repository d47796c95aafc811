"""Pure-Python twin of ``engine._wkd_c``: z-base-32, SHA-1 and the WKD local-part hash.

Same names, arguments, results and errors as the native kernel; the tests run every case on both.
z-base-32 here is RFC 4648 base32 (``base64.b32encode``, same most-significant-bit-first order)
with the alphabet swapped, which also makes it an independent check of the C encoder.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# bytes.translate runs in C; str.translate with a dict table would dominate the hash.
_TO_ZB32 = bytes.maketrans(_RFC4648.encode(), ALPHABET.encode())
_FROM_ZB32 = str.maketrans(ALPHABET, _RFC4648)
_VALUES = {ch: i for i, ch in enumerate(ALPHABET)}
# Two symbols per 10-bit value: a 160-bit digest is 16 lookups.
_PAIRS = [ALPHABET[i >> 5] + ALPHABET[i & 31] for i in range(1024)]
_PAIR_SHIFTS = range(150, -1, -10)
# WKD draft section 3.1: only ASCII upper-case letters are mapped; bytes >= 0x80 stay as they are.
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_BACKENDS = ("auto", "portable", "sha_ni")


def features() -> dict:
    """What this implementation uses: ``{"native": False, "sha_ni": False, "sha1": "hashlib"}``."""
    return {"native": False, "sha_ni": False, "sha1": "hashlib"}


def _buffer_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    view = memoryview(data)  # TypeError for objects without the buffer protocol
    if not view.c_contiguous:
        raise BufferError("a C-contiguous buffer is required")
    return view.tobytes()


def sha1(data: object, backend: str = "auto") -> bytes:
    """SHA-1 digest of a bytes-like object (hashlib); ``backend`` is checked as the native one is."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown SHA-1 backend {backend!r}; expected one of {sorted(_BACKENDS)}")
    if backend == "sha_ni":
        raise ValueError("SHA-1 backend 'sha_ni' is not available on this CPU")
    return hashlib.sha1(_buffer_bytes(data)).digest()


def zbase32_encode(data: object) -> str:
    """z-base-32 of a bytes-like object: ceil(8n/5) characters, zero-filled last character."""
    raw = _buffer_bytes(data)
    nchars = (len(raw) * 8 + 4) // 5
    return base64.b32encode(raw)[:nchars].translate(_TO_ZB32).decode("ascii")


def zbase32_decode(text: str) -> bytes:
    """Bytes of a z-base-32 string; ValueError (with the position) for anything encode never emits."""
    if not isinstance(text, str):
        raise TypeError(f"z-base-32 text must be str, not {type(text).__name__}")
    for i, ch in enumerate(text):
        if ch not in _VALUES:
            raise ValueError(f"invalid z-base-32 character {ch!r} at position {i}")
    n = len(text)
    if n % 8 in (1, 3, 6):
        raise ValueError(f"invalid z-base-32 length {n}: no whole number of bytes encodes to it")
    unused_bits = (n * 5) % 8
    if unused_bits and _VALUES[text[-1]] & ((1 << unused_bits) - 1):
        raise ValueError(f"non-zero unused bits in the last z-base-32 character at position {n - 1}")
    padded = text.translate(_FROM_ZB32) + "=" * (-n % 8)
    return base64.b32decode(padded)


def _local_bytes(local_part: object) -> bytes:
    if isinstance(local_part, str):
        return local_part.encode("utf-8")
    try:
        return _buffer_bytes(local_part)
    except TypeError:
        raise TypeError(f"local part must be str or bytes-like, not {type(local_part).__name__}") from None


def wkd_hash(local_part: str | bytes) -> str:
    """z-base-32(SHA-1(local part with ASCII A-Z lower-cased)); a str is UTF-8 encoded first."""
    digest = hashlib.sha1(_local_bytes(local_part).translate(_ASCII_LOWER)).digest()
    n = int.from_bytes(digest, "big")
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in _PAIR_SHIFTS])


def wkd_hashes(items: Iterable[str | bytes]) -> list[str]:
    """``[wkd_hash(x) for x in items]``."""
    if isinstance(items, (str, bytes, bytearray, memoryview)):
        raise TypeError("wkd_hashes expects an iterable of local parts, not a single one")
    try:
        seq = list(items)
    except TypeError:
        raise TypeError("wkd_hashes expects an iterable of str or bytes") from None
    return [wkd_hash(x) for x in seq]
