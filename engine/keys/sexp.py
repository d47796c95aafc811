"""Canonical S-expressions (the subset gpg-agent speaks): encode and parse.

Canonical form only (``(3:foo5:value)``): lengths in decimal, a colon, the raw bytes; no display hints, no
whitespace, no advanced or transport form. Atoms are ``bytes``; lists are Python lists.
"""

from __future__ import annotations

from engine.errors import StructuralError

Sexp = bytes | list["Sexp"]


def encode(value: Sexp | str | int) -> bytes:
    """Canonical encoding of nested lists of atoms (``bytes``; ``str`` as UTF-8; ``int`` as decimal text)."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: object, out: bytearray) -> None:
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value).encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += b"%d:" % len(raw)
        out += raw
    elif isinstance(value, (list, tuple)):
        out += b"("
        for item in value:
            _encode(item, out)
        out += b")"
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as an S-expression")


def parse(data: bytes) -> Sexp:
    """Parse one canonical S-expression; trailing bytes (other than NULs some peers append) are an error."""
    value, pos = _parse_at(data, 0, depth=0)
    if data[pos:].strip(b"\0"):
        raise StructuralError("trailing bytes after S-expression", offset=pos, source="sexp")
    return value


_MAX_DEPTH = 64


def _parse_at(data: bytes, pos: int, depth: int) -> tuple[Sexp, int]:
    if pos >= len(data):
        raise StructuralError("truncated S-expression", offset=pos, source="sexp")
    ch = data[pos]
    if ch == 0x28:  # "("
        if depth >= _MAX_DEPTH:
            raise StructuralError("S-expression nested too deeply", offset=pos, source="sexp")
        items: list[Sexp] = []
        pos += 1
        while True:
            if pos >= len(data):
                raise StructuralError("unterminated list", offset=pos, source="sexp")
            if data[pos] == 0x29:  # ")"
                return items, pos + 1
            item, pos = _parse_at(data, pos, depth + 1)
            items.append(item)
    if 0x30 <= ch <= 0x39:
        colon = data.find(b":", pos, pos + 10)
        if colon < 0 or not data[pos:colon].isdigit():
            raise StructuralError("bad atom length", offset=pos, source="sexp")
        if ch == 0x30 and colon > pos + 1:
            raise StructuralError("atom length with leading zero", offset=pos, source="sexp")
        length = int(data[pos:colon])
        end = colon + 1 + length
        if end > len(data):
            raise StructuralError("atom runs past the end", offset=pos, source="sexp")
        return data[colon + 1 : end], end
    raise StructuralError(f"unexpected byte 0x{ch:02x} (not canonical form)", offset=pos, source="sexp")


def find(sexp: Sexp, name: bytes) -> list[Sexp] | None:
    """The first sub-list (depth first) whose first atom is ``name``, or None."""
    if not isinstance(sexp, list):
        return None
    if sexp and sexp[0] == name:
        return sexp
    for item in sexp:
        hit = find(item, name)
        if hit is not None:
            return hit
    return None


def value_of(sexp: Sexp, name: bytes) -> bytes:
    """The atom after ``name`` in ``(name value)`` anywhere in ``sexp``; StructuralError if absent."""
    hit = find(sexp, name)
    if hit is None or len(hit) < 2 or not isinstance(hit[1], bytes):
        raise StructuralError(f"no ({name.decode(errors='replace')} ...) in S-expression", source="sexp")
    return hit[1]


def mpi_bytes(value: bytes) -> bytes:
    """An unsigned integer as libgcrypt's ``%m`` writes it: a zero byte in front when the top bit is set."""
    value = value.lstrip(b"\0") or b"\0"
    return b"\0" + value if value[0] & 0x80 else value
