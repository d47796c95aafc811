"""Reading armor line by line: BEGIN and END lines, headers, the CRC line, kernel errors with line numbers.

Shared by the whole-buffer decoder (:mod:`.decode`) and the streaming reader (:mod:`.reader`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

from engine import _native
from engine.armor.format import _BEGIN, _CLEARTEXT, _END, _HEADER_LINE, _READ_KIND, _WS, ArmorWarning
from engine.errors import ArmorError


def _line_no(buf: bytes, pos: int, base: int = 1) -> int:
    return base + buf.count(b"\n", 0, pos)


def _find_begin(
    buf: bytes, pos: int, clean_start: bool = True, need_eol: bool = False
) -> tuple[int, str, int] | None:
    """(line start, kind, offset after the BEGIN line) of the next BEGIN line at or after ``pos``.

    With ``need_eol`` a BEGIN line without its newline yet gives offset -1 (streaming: read more).
    """
    while (i := buf.find(_BEGIN, pos)) >= 0:
        pos = i + 1
        start = buf.rfind(b"\n", 0, i) + 1
        if buf[start:i].strip(_WS) or (start == 0 and not clean_start):
            continue  # not at the start of a line
        eol = buf.find(b"\n", i)
        if eol < 0 and need_eol:
            return start, "", -1
        eol = len(buf) if eol < 0 else eol
        line = buf[i:eol].rstrip(_WS)
        kind = line[len(_BEGIN) : -5]
        if not line.endswith(b"-----") or not _READ_KIND.fullmatch(kind):
            raise ArmorError("malformed BEGIN line", line=_line_no(buf, i))
        if kind.decode() == _CLEARTEXT:
            continue
        return start, kind.decode(), min(eol + 1, len(buf))
    return None


def _parse_header(line: bytes, strict: bool, line_no: int) -> tuple[str, str] | None:
    """A ``Key: Value`` header line, or None when the line is where the body starts (lenient only)."""
    m = _HEADER_LINE.fullmatch(line)
    if m:
        return m.group(1).decode("ascii"), m.group(2).decode("utf-8", "replace")
    if strict or line.startswith(b"-----") or not re.fullmatch(rb"[A-Za-z0-9+/=]+", line):
        raise ArmorError("bad header line (expected 'Key: Value' or a blank line)", line=line_no)
    return None  # a missing blank line: this is already base64


def _add_header(headers: dict[str, str], key: str, value: str) -> None:
    headers[key] = f"{headers[key]}\n{value}" if key in headers else value


def _check_end(line: bytes, kind: str, line_of: Callable[[], int]) -> None:
    line = line.strip(_WS)
    if line == f"-----END PGP {kind}-----".encode():
        return
    if line.startswith(_END):
        got = line.decode("ascii", "replace")
        raise ArmorError(f"mismatched END line: expected 'END PGP {kind}', got {got!r}", line=line_of())
    raise _no_end(kind, line_of())


def _no_end(kind: str, line_no: int) -> ArmorError:
    return ArmorError(f"no END line for 'BEGIN PGP {kind}' (truncated input?)", line=line_no)


def _parse_crc_line(line: bytes, strict: bool, line_of: Callable[[], int]) -> int | None:
    try:
        if len(line) != 5:
            raise ValueError(line)
        return int.from_bytes(_native.kernel("armor").decode_body(line[1:]), "big")
    except ValueError:
        _complain(f"bad CRC line {line[:16].decode('ascii', 'replace')!r}", strict, line_of)
        return None


def _complain(reason: str, strict: bool, line_of: Callable[[], int]) -> None:
    if strict:
        raise ArmorError(reason, line=line_of())
    warnings.warn(f"armor line {line_of()}: {reason}", ArmorWarning, stacklevel=4)


def _decode(
    text: Any, final: bool, crc: int, buf: bytes, base_off: int, base_line: int
) -> tuple[bytes, int, int]:
    """Run the decode kernel; turn its ``ValueError(reason, offset)`` into an ArmorError with a line."""
    try:
        return _native.kernel("armor").decode_chunk(text, final, crc)
    except ValueError as exc:
        reason, offset = exc.args
        pos = base_off + offset
        if offset >= len(text):  # ended inside a group: point at its last character
            pos = max(len(buf[:pos].rstrip(_WS)) - 1, 0)
        raise ArmorError(reason, line=_line_no(buf, pos, base_line)) from None


def _split_crc(buf: bytes, start: int, end: int, clean_start: bool = True) -> tuple[int, bytes | None]:
    """Split ``buf[start:end]`` into body end and the CRC line, if the last non-blank line is one."""
    stop = end
    while stop > start and buf[stop - 1] in _WS:  # no copy: only the few bytes before END are looked at
        stop -= 1
    line_start = buf.rfind(b"\n", start, stop) + 1 or start
    if line_start == start and not clean_start:
        return end, None
    line = buf[line_start:stop].strip(_WS)
    return (line_start, line) if line.startswith(b"=") else (end, None)


def _verify_crc(line: bytes, computed: int, strict: bool, line_of: Callable[[], int]) -> None:
    expected = _parse_crc_line(line, strict, line_of)
    if expected is not None and expected != computed:
        _complain(f"CRC-24 mismatch: armor says {expected:06X}, data gives {computed:06X}", strict, line_of)
