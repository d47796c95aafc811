"""Pure-Python armor kernels: CRC-24 and line-wrapped base64; the twin of the native ``engine._armor_c``.

Both modules expose the same functions with the same results and the same errors, so this file is also
the readable specification of the fast path. Decode errors are ``ValueError(reason, offset)``: the reason
and the byte offset in the input of the first offending byte (scanning order), or the input length when
the input ends inside a 4-character group. Only space, tab, CR and LF count as whitespace.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

CRC24_INIT = 0xB704CE
_POLY = 0x1864CFB
_WS = b" \t\r\n"
_INVALID = re.compile(rb"[^A-Za-z0-9+/= \t\r\n]")
_NON_WS = re.compile(rb"[^ \t\r\n]")


def _table() -> list[int]:
    """CRC-24 with register 0 of every byte value: b * x^24 mod P."""
    table = []
    for b in range(256):
        c = b << 16
        for _ in range(8):
            c = (c << 1) ^ _POLY if c & 0x800000 else c << 1
        table.append(c & 0xFFFFFF)
    return table


_TABLE = _table()


def _crc_arg(crc: int) -> int:
    if not 0 <= crc <= 0xFFFFFF:
        raise ValueError("crc must be a 24-bit value")
    return crc


def _width_arg(width: int) -> int:
    if width <= 0 or width % 4:
        raise ValueError("width must be a positive multiple of 4")
    return width


def crc24(data: Any, crc: int = CRC24_INIT) -> int:
    """CRC-24 (RFC 9580 §6.1) of ``data`` (any bytes-like object), continuing from ``crc``.

    One byte a step: c' = (c * x^8 + b * x^24) mod P = T[(c >> 16) ^ b] ^ (c << 8 & 0xFFFFFF).
    """
    c = _crc_arg(crc)
    table = _TABLE
    for b in memoryview(data).cast("B"):
        c = table[(c >> 16) ^ b] ^ ((c << 8) & 0xFFFFFF)
    return c


def encode_body(data: Any, width: int = 64) -> bytes:
    """Base64 of ``data`` in lines of ``width`` chars (a positive multiple of 4), each ending in ``\\n``."""
    w = _width_arg(width)
    b64 = binascii.b2a_base64(data, newline=False)
    if not b64:
        return b""
    return b"\n".join([b64[i : i + w] for i in range(0, len(b64), w)]) + b"\n"


def armor_block(data: Any, head: Any, tail: Any, width: int = 64, with_crc: bool = True) -> bytes:
    """``head`` + base64 lines of ``data`` + (``=XXXX\\n`` CRC line when ``with_crc``) + ``tail``."""
    parts = [bytes(head), encode_body(data, width)]
    if with_crc:
        parts += [b"=", binascii.b2a_base64(crc24(data).to_bytes(3, "big"), newline=False), b"\n"]
    parts.append(bytes(tail))
    return b"".join(parts)


def encode_into(data: Any, out: Any, width: int = 64, crc: int = -1) -> tuple[int, int]:
    """Encode ``data`` as lines into the writable buffer ``out``; return ``(bytes_written, crc)``.

    ``crc`` continues a CRC-24 over ``data``; -1 skips it (and is returned as is).
    """
    if crc != -1:
        _crc_arg(crc)
    body = encode_body(data, width)
    view = memoryview(out).cast("B")
    if len(body) > len(view):
        raise ValueError(f"output buffer too small: need {len(body)} bytes, have {len(view)}")
    view[: len(body)] = body
    return len(body), (crc if crc == -1 else crc24(data, crc))


def _nth_non_ws_from_end(buf: bytes, end: int, count: int) -> int:
    """Offset of the ``count``-th non-whitespace byte before ``end``, counting backwards."""
    i = end
    while count:
        i -= 1
        if buf[i] not in _WS:
            count -= 1
    return i


def _next_non_ws(buf: bytes, start: int, limit: int) -> int:
    m = _NON_WS.search(buf, start, limit)
    return m.start() if m else -1


def _scan(buf: bytes, final: bool) -> int:
    """Validate ``buf`` like the native state machine; return the number of bytes to consume."""
    n = len(buf)
    bad = _INVALID.search(buf)
    limit = bad.start() if bad else n
    invalid = ValueError(f"invalid base64 character 0x{buf[limit]:02x}", limit) if bad else None
    pad = buf.find(b"=", 0, limit)
    if pad < 0:
        if invalid:
            raise invalid
        rest = len(buf.translate(None, _WS)) % 4
        if not rest:
            return n
        if final:
            raise ValueError("incomplete final base64 group", n)
        return _nth_non_ws_from_end(buf, n, rest)
    q = len(buf[:pad].translate(None, _WS)) % 4
    if q < 2:
        raise ValueError("misplaced base64 padding '='", pad)
    end = pad
    if q == 2:  # "xx=" needs a second '='
        j = _next_non_ws(buf, pad + 1, limit)
        if j < 0:
            if invalid:
                raise invalid
            if final:
                raise ValueError("incomplete final base64 group", n)
            return _nth_non_ws_from_end(buf, pad, 2)
        if buf[j] != 0x3D:
            raise ValueError("base64 data after padding", j)
        end = j
    k = _next_non_ws(buf, end + 1, limit)
    if k >= 0:
        if buf[k] == 0x3D:
            raise ValueError("misplaced base64 padding '='", k)
        raise ValueError("base64 data after padding", k)
    if invalid:
        raise invalid
    return n


def decode_chunk(text: Any, final: bool = True, crc: int = -1) -> tuple[bytes, int, int]:
    """Decode base64 ``text`` ignoring space, tab, CR and LF; return ``(data, consumed, crc)``.

    With ``final`` false the text may end inside a 4-character group, which is left unconsumed.
    ``crc`` continues a CRC-24 over the decoded bytes (-1 skips it).
    """
    if crc != -1:
        _crc_arg(crc)
    buf = text if isinstance(text, bytes) else memoryview(text).cast("B").tobytes()
    consumed = _scan(buf, final)
    data = binascii.a2b_base64(buf[:consumed].translate(None, _WS)) if consumed else b""
    return data, consumed, (crc if crc == -1 else crc24(data, crc))


def decode_body(text: Any) -> bytes:
    """Decode a whole base64 body ignoring space, tab, CR and LF; ``ValueError(reason, offset)``."""
    return decode_chunk(text, True, -1)[0]


def features() -> dict[str, Any]:
    """The paths in use, for benchmark tables (the twin uses no CPU features)."""
    return {
        "impl": "pure",
        "avx2": False,
        "ssse3": False,
        "pclmul": False,
        "sha_ni": False,
        "base64": "binascii",
        "crc24": "table-16",
    }
