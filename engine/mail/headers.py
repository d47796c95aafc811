"""Byte-level header parsing: where the header section ends, its fields with exact byte spans, and
Content-Type values. Never re-serializes anything, so callers can edit bytes in place (RFC 5322 §2.2)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from engine.errors import StructuralError

_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_TOKEN_PARAM = re.compile(r'\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', re.S)


@dataclass(frozen=True)
class Field:
    """One header field: ``name`` lowercased, ``start``/``end`` span its bytes (folded lines and EOL)."""

    name: str
    start: int
    end: int
    colon: int


def eol_of(raw: bytes) -> bytes:
    """The line ending the message uses, judged by its first line (LF when it has none)."""
    nl = raw.find(b"\n")
    return b"\r\n" if nl > 0 and raw[nl - 1 : nl] == b"\r" else b"\n"


def split_header(raw: bytes) -> tuple[int, int]:
    """``(header_end, body_start)``: the header section is ``raw[:header_end]`` (its last EOL included),
    the body ``raw[body_start:]``. Without an empty line the whole message is header."""
    if raw.startswith(b"\r\n"):
        return 0, 2
    if raw.startswith(b"\n"):
        return 0, 1
    m = re.search(rb"\n(\r?\n)", raw)
    if m is None:
        return len(raw), len(raw)
    return m.start() + 1, m.end()


def iter_fields(raw: bytes, header_end: int) -> Iterator[Field]:
    """Fields of ``raw[:header_end]``; a line that is neither a field nor a continuation is an error."""
    pos = 0
    current: tuple[str, int, int] | None = None
    while pos < header_end:
        nl = raw.find(b"\n", pos, header_end)
        line_end = header_end if nl < 0 else nl + 1
        if raw[pos : pos + 1] in (b" ", b"\t"):
            if current is None:
                raise StructuralError("header continuation line before any field", offset=pos)
        else:
            m = _FIELD_NAME.match(raw, pos, line_end)
            if m is None:
                raise StructuralError("header line is not a field", offset=pos)
            if current is not None:
                yield Field(current[0], current[1], pos, current[2])
            current = (m.group(1).decode("ascii").lower(), pos, m.end() - 1)
        pos = line_end
    if current is not None:
        yield Field(current[0], current[1], header_end, current[2])


def field_value(raw: bytes, field: Field) -> str:
    """The unfolded value of a field, decoded as Latin-1 (lossless for 8-bit headers) and stripped."""
    text = raw[field.colon + 1 : field.end].decode("latin-1")
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip()


def find_fields(raw: bytes, header_end: int, name: str) -> list[Field]:
    """All fields called ``name`` (case-insensitive), in order."""
    return [f for f in iter_fields(raw, header_end) if f.name == name]


def _strip_comments(value: str) -> str:
    out, depth, quoted, escaped = [], 0, False, False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == '"' and depth == 0:
            quoted = True
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``("type/subtype", params)`` lowercased type and parameter names; tolerant of junk (RFC 2045 §5.1)."""
    value = _strip_comments(value)
    head, _, rest = value.partition(";")
    ctype = "".join(head.split()).lower()
    params: dict[str, str] = {}
    for m in _TOKEN_PARAM.finditer(rest):
        key, val = m.group(1).lower(), m.group(2)
        if val.startswith('"') and val.endswith('"') and len(val) >= 2:
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        params.setdefault(key, val)
    return ctype, params


def content_type(raw: bytes, header_end: int) -> tuple[str, dict[str, str]] | None:
    """The parsed first Content-Type field of a header section, or None when there is none."""
    for f in iter_fields(raw, header_end):
        if f.name == "content-type":
            return parse_content_type(field_value(raw, f))
    return None
