"""z-base-32 (the human-oriented base-32 of Zooko O'Whielacronx; alphabet as in RFC 6189).

Bits are read most significant first, five at a time, as GnuPG's ``zb32_encode`` does for WKD:
``n`` bytes give ``ceil(8n/5)`` characters, the unused low bits of the last character are zero,
and there is no padding character (20 bytes give 32 characters). :func:`decode` is strict: it
accepts exactly what :func:`encode` produces (lower-case alphabet only; no length whose last
character would carry no data bits; zero fill bits) and raises ``ValueError`` naming the position
otherwise, so ``encode(decode(s)) == s`` for every accepted ``s``.
"""

from __future__ import annotations

from engine import _native

ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"

__all__ = ["ALPHABET", "decode", "encode"]


def encode(data: bytes) -> str:
    """z-base-32 text of ``data`` (any bytes-like object)."""
    return _native.kernel("wkd").zbase32_encode(data)


def decode(text: str) -> bytes:
    """Bytes of z-base-32 ``text``; ``ValueError`` for characters, lengths or fill bits encode never emits."""
    return _native.kernel("wkd").zbase32_decode(text)
