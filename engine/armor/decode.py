"""Decoding whole buffers: the first armor block (:func:`dearmor`) or every block (:func:`iter_dearmor`)."""

from __future__ import annotations

from collections.abc import Iterator

from engine.armor.format import _WS, CRC24_INIT, Armored
from engine.armor.lines import (
    _add_header,
    _check_end,
    _decode,
    _find_begin,
    _line_no,
    _no_end,
    _parse_header,
    _split_crc,
    _verify_crc,
)
from engine.errors import ArmorError


def _parse_block(buf: bytes, pos: int, strict: bool) -> tuple[Armored, int] | None:
    """The next block at or after ``pos`` and the offset after its END line."""
    found = _find_begin(buf, pos)
    if found is None:
        return None
    _, kind, pos = found
    headers: dict[str, str] = {}
    while True:  # header lines up to the blank line
        eol = buf.find(b"\n", pos)
        eol = len(buf) if eol < 0 else eol
        line = buf[pos:eol].strip(_WS)
        if not line or line.startswith(b"-"):
            body = eol + 1 if not line else pos
            break
        if pos >= len(buf):
            raise _no_end(kind, _line_no(buf, pos))
        header = _parse_header(line, strict, _line_no(buf, pos))
        if header is None:
            body = pos
            break
        _add_header(headers, *header)
        pos = eol + 1
    dash = buf.find(b"-", body)  # base64 has no '-': the first one starts the END line (or is an error)
    if dash < 0:
        raise _no_end(kind, _line_no(buf, len(buf)))
    end_start = buf.rfind(b"\n", 0, dash) + 1
    if buf[end_start:dash].strip(_WS):  # '-' inside a base64 line: let the decoder report it
        _decode(memoryview(buf)[body : dash + 1], True, -1, buf, body, 1)
    end_eol = buf.find(b"\n", dash)
    end_eol = len(buf) if end_eol < 0 else end_eol
    _check_end(buf[end_start:end_eol], kind, lambda: _line_no(buf, end_start))
    body_end, crc_line = _split_crc(buf, body, end_start)
    data, _, crc = _decode(memoryview(buf)[body:body_end], True, CRC24_INIT if crc_line else -1, buf, body, 1)
    if crc_line is not None:
        _verify_crc(crc_line, crc, strict, lambda: _line_no(buf, body_end))
    return Armored(kind, headers, data), end_eol + 1


def _as_bytes(text: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8")
    return text if isinstance(text, bytes) else bytes(text)


def iter_dearmor(text: bytes | bytearray | memoryview | str, strict: bool = False) -> Iterator[Armored]:
    """Every armor block in ``text`` in order (keyrings, mail bodies); anything between blocks is ignored."""
    buf = _as_bytes(text)
    pos = 0
    while (block := _parse_block(buf, pos, strict)) is not None:
        yield block[0]
        pos = block[1]


def dearmor(text: bytes | bytearray | memoryview | str, strict: bool = False) -> Armored:
    """The first armor block in ``text``; ArmorError (with a line number) if there is none or it is broken."""
    buf = _as_bytes(text)
    block = _parse_block(buf, 0, strict)
    if block is None:
        raise ArmorError("no '-----BEGIN PGP ...-----' line found", line=1)
    return block[0]
