"""OpenPGP ASCII armor (RFC 9580 §6): whole-buffer and streaming, on the native or pure kernels.

Writing follows gpg: 64-column base64 lines, ``\\n`` line ends, a ``=XXXX`` CRC-24 line unless the
content is v6-only (RFC 9580 §6.1: then the CRC must be left out). Reading is lenient as §6 asks: any
whitespace (CR included) is ignored, the CRC may be missing, and a wrong or malformed CRC is only an
:class:`ArmorWarning` unless ``strict=True``. Text before, between and after blocks is ignored.

Headers read from armor are a ``dict``; a key that appears more than once (``Comment:``) keeps every
value, joined by ``\\n`` in order (values cannot contain newlines, so nothing is lost):
:meth:`Armored.header_items` gives the pairs back.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from engine import _native
from engine.errors import ArmorError, InvalidArgument

__all__ = [
    "KINDS",
    "ArmorReader",
    "ArmorWarning",
    "ArmorWriter",
    "Armored",
    "armor",
    "crc_wanted",
    "dearmor",
    "iter_dearmor",
]

KINDS = frozenset({"MESSAGE", "PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK", "SIGNATURE", "ARMORED FILE"})
_PART_KIND = re.compile(r"MESSAGE, PART [1-9][0-9]*(/[1-9][0-9]*)?")
_READ_KIND = re.compile(rb"[A-Z0-9][A-Z0-9 ,/]*")
_HEADER_KEY = re.compile(r"[!-9;-~]+")  # printable ASCII without space and ':'
_HEADER_LINE = re.compile(rb"([!-9;-~]+): ?(.*)")
WIDTH = 64
LINE_IN = WIDTH // 4 * 3  # input bytes per full line
CRC24_INIT = 0xB704CE
_BEGIN = b"-----BEGIN PGP "
_END = b"-----END PGP "
_WS = b" \t\r\n"
_CLEARTEXT = "SIGNED MESSAGE"  # RFC 9580 §7: cleartext framework, not a base64 block; skipped


class ArmorWarning(UserWarning):
    """Armor that RFC 9580 says to accept anyway: a wrong or malformed CRC-24 line."""


@dataclass(frozen=True)
class Armored:
    """One decoded armor block: ``kind`` ("MESSAGE", ...), ``headers`` (repeats joined by "\\n"), ``data``."""

    kind: str
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""

    def header_items(self) -> list[tuple[str, str]]:
        """The header lines as (key, value) pairs, repeated keys included."""
        return [(k, v) for k, joined in self.headers.items() for v in joined.split("\n")]


# ----------------------------------------------------------------------------------------------- writing


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not (kind in KINDS or _PART_KIND.fullmatch(kind)):
        raise InvalidArgument(f"unknown armor kind {kind!r}: use one of {sorted(KINDS)} or 'MESSAGE, PART X'")
    return kind


def _head(kind: str, headers: Mapping[str, str | Sequence[str]] | None) -> bytes:
    lines = [f"-----BEGIN PGP {_check_kind(kind)}-----\n"]
    for key, values in (headers or {}).items():
        if not isinstance(key, str) or not _HEADER_KEY.fullmatch(key):
            raise InvalidArgument(f"bad armor header key {key!r}")
        for value in [values] if isinstance(values, str) else values:
            if not isinstance(value, str) or "\n" in value or "\r" in value:
                raise InvalidArgument(f"armor header {key!r}: value must be a str without line breaks")
            lines.append(f"{key}: {value}\n")
    lines.append("\n")
    return "".join(lines).encode("utf-8")


def _tail(kind: str) -> bytes:
    return f"-----END PGP {kind}-----\n".encode("ascii")


def _packet_at(data: memoryview, pos: int) -> tuple[int, int, int | None] | None:
    """(tag, body offset, body length or None if partial/indeterminate) of the packet at ``pos``."""
    if pos + 2 > len(data) or not data[pos] & 0x80:
        return None
    first = data[pos]
    if first & 0x40:  # new format (RFC 9580 §4.2.1)
        tag, o = first & 0x3F, data[pos + 1]
        if o < 192:
            return tag, pos + 2, o
        if o < 224:
            return (tag, pos + 3, ((o - 192) << 8) + data[pos + 2] + 192) if pos + 3 <= len(data) else None
        if o == 255:
            length = int.from_bytes(data[pos + 2 : pos + 6], "big")
            return (tag, pos + 6, length) if pos + 6 <= len(data) else None
        return tag, pos + 2, None
    size = (1, 2, 4, 0)[first & 3]  # legacy format
    length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big") if size else None
    return (first >> 2) & 0x0F, pos + 1 + size, length


def crc_wanted(data: Any) -> bool:
    """Whether RFC 9580 §6.1 lets armor carry a CRC-24 for this content.

    False for v6-only content: a v6 key first (tag 5/6, version 6), an encrypted message whose session-key
    packets lead to a v2 SEIPD (tag 18, version 2), or only v6 signatures. Reads a few packet headers only.
    """
    view = memoryview(data).cast("B")
    pos, signatures = 0, 0
    for _ in range(64):
        found = _packet_at(view, pos)
        if found is None:
            break
        tag, start, length = found
        version = view[start] if start < len(view) else -1
        if tag in (5, 6):
            return version != 6
        if tag == 18:
            return version != 2
        if tag == 2 and version == 6:
            signatures += 1
        elif tag not in (1, 3):  # PKESK / SKESK come before the encrypted data
            return True
        if length is None:
            break
        pos = start + length
    return not (signatures and pos >= len(view))


def armor(
    data: Any,
    kind: str = "MESSAGE",
    headers: Mapping[str, str | Sequence[str]] | None = None,
    crc: bool | None = None,
) -> bytes:
    """ASCII-armor ``data``: BEGIN line, ``Key: Value`` headers, blank line, 64-column base64, CRC, END line.

    ``crc=None`` follows RFC 9580 §6.1 (see :func:`crc_wanted`). A header value may be a list of strings
    for a repeated key.
    """
    with_crc = crc_wanted(data) if crc is None else bool(crc)
    return _native.kernel("armor").armor_block(data, _head(kind, headers), _tail(kind), WIDTH, with_crc)


def _write_all(fileobj: BinaryIO, chunk: memoryview | bytes) -> None:
    done = fileobj.write(chunk)
    while done is not None and done < len(chunk):  # raw files may write less
        chunk = memoryview(chunk)[done:]
        done = fileobj.write(chunk)


class ArmorWriter:
    """Streaming armor to ``fileobj`` in constant memory; lines stay 64 wide across writes.

    The head is written at once, the last line, CRC line and END line by :meth:`close` (or on leaving a
    ``with`` block without an exception). ``fileobj`` is not closed. ``crc=None`` decides from the first
    bytes written, as :func:`armor` does.
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        kind: str = "MESSAGE",
        headers: Mapping[str, str | Sequence[str]] | None = None,
        crc: bool | None = True,
    ) -> None:
        self._f = fileobj
        self._tail = _tail(kind)
        self._want_crc = crc
        self._crc = CRC24_INIT if crc else -1
        self._pending = bytearray()  # fewer than LINE_IN bytes not yet encoded
        self._out = bytearray()  # reused output buffer
        self.closed = False
        _write_all(fileobj, _head(kind, headers))

    def _emit(self, chunk: memoryview | bytearray) -> None:
        need = len(chunk) // 3 * 4 + 4 + len(chunk) // LINE_IN + 1
        if len(self._out) < need:
            self._out = bytearray(max(need, 2 * len(self._out)))
        written, self._crc = _native.kernel("armor").encode_into(chunk, self._out, WIDTH, self._crc)
        with memoryview(self._out) as out:
            _write_all(self._f, out[:written])

    def write(self, data: Any) -> int:
        """Armor ``data`` (any bytes-like object); returns its length."""
        if self.closed:
            raise ValueError("write to a closed ArmorWriter")
        with memoryview(data) as raw:
            view = raw.cast("B")
            n = len(view)
            if self._want_crc is None and n:
                self._want_crc = crc_wanted(view)
                self._crc = CRC24_INIT if self._want_crc else -1
            if self._pending:
                take = min(LINE_IN - len(self._pending), n)
                self._pending += view[:take]
                view = view[take:]
                if len(self._pending) == LINE_IN:
                    self._emit(self._pending)
                    self._pending.clear()
            full = len(view) // LINE_IN * LINE_IN
            if full:
                self._emit(view[:full])
            self._pending += view[full:]
        return n

    def close(self) -> None:
        """Write the last line, the CRC line and the END line (once)."""
        if self.closed:
            return
        self.closed = True
        if self._pending:
            self._emit(self._pending)
        tail = self._tail
        if self._want_crc is None:  # nothing was written: armor(b"") carries a CRC too
            self._crc = CRC24_INIT
        if self._crc != -1:
            tail = _crc_line(self._crc) + tail
        _write_all(self._f, tail)

    def __enter__(self) -> ArmorWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True


def _crc_line(crc: int) -> bytes:
    return b"=" + _native.kernel("armor").encode_body(crc.to_bytes(3, "big"), 4)


# ----------------------------------------------------------------------------------------------- reading


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


def _verify_crc(line: bytes, computed: int, strict: bool, line_of: Callable[[], int]) -> None:
    expected = _parse_crc_line(line, strict, line_of)
    if expected is not None and expected != computed:
        _complain(f"CRC-24 mismatch: armor says {expected:06X}, data gives {computed:06X}", strict, line_of)


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


class ArmorReader(io.RawIOBase):
    """Streaming dearmor of the first block in ``fileobj``, in memory bounded by ``chunk_size``.

    ``kind`` and ``headers`` are read at construction; :meth:`read` returns decoded bytes; the END line
    and the CRC are checked when the body ends (a CRC problem is an ArmorError only if ``strict``).
    With ``multiple=True`` the payloads of every following block are returned too, one after the other
    (a keyring of concatenated armored keys); ``kind`` and ``headers`` then describe the block being
    read and ``blocks`` counts the blocks begun. Text between blocks is ignored.
    """

    def __init__(
        self, fileobj: BinaryIO, strict: bool = False, chunk_size: int = 1 << 20, multiple: bool = False
    ) -> None:
        super().__init__()
        self._f, self._strict, self._chunk = fileobj, strict, chunk_size
        self._multiple = multiple
        self.blocks = 1
        self._raw = b""  # text not yet decoded
        self._line = 1  # line number of self._raw[0]
        self._clean = True  # only whitespace between the last line start and self._raw[0]
        self._eof = False
        self._out = bytearray()
        self._crc = CRC24_INIT
        self._padded = False
        self._done = False
        self.kind, self.headers = self._read_head()  # type: ignore[misc]

    def _fill(self) -> bool:
        chunk = self._f.read(self._chunk) if not self._eof else b""
        if not chunk:
            self._eof = True
            return False
        self._raw += chunk
        return True

    def _drop(self, n: int) -> None:
        """Forget the first ``n`` bytes of raw text, keeping line number and line-start state."""
        raw = self._raw
        nl = raw.rfind(b"\n", 0, n)
        self._clean = not raw[nl + 1 : n].strip(_WS) and (nl >= 0 or self._clean)
        self._line += raw.count(b"\n", 0, n)
        self._raw = raw[n:]

    def _read_head(self, required: bool = True) -> tuple[str, dict[str, str]] | None:
        while (found := _find_begin(self._raw, 0, self._clean, not self._eof)) is None or found[2] < 0:
            if found is None:  # keep a possible partial marker and its line start, bounded
                self._drop(max(self._raw.rfind(b"\n") + 1, len(self._raw) - 256, 0))
            if not self._fill() and found is None:
                if not required:
                    return None
                raise ArmorError("no '-----BEGIN PGP ...-----' line found", line=self._line)
        self._drop(found[2])
        headers: dict[str, str] = {}
        while True:
            eol = self._raw.find(b"\n")
            if eol < 0 and len(self._raw) > 65536:
                raise ArmorError("armor header line too long", line=self._line)
            if eol < 0 and self._fill():
                continue
            eol = len(self._raw) if eol < 0 else eol
            line = self._raw[:eol].strip(_WS)
            if not line:
                if self._eof and not self._raw:
                    raise _no_end(found[1], self._line)
                self._drop(min(eol + 1, len(self._raw)))
                return found[1], headers
            if line.startswith(b"-") or (header := _parse_header(line, self._strict, self._line)) is None:
                return found[1], headers
            _add_header(headers, *header)
            self._drop(eol + 1)

    def _decode_more(self) -> None:
        """Decode what the next chunk makes decodable; finish at the END line."""
        self._fill()
        raw = self._raw
        dash = raw.find(b"-")
        if dash >= 0:
            end_eol = raw.find(b"\n", dash)
            if end_eol < 0 and not self._eof:
                return  # the END line is not complete yet
            return self._finish(dash, len(raw) if end_eol < 0 else end_eol)
        if self._eof:
            raise _no_end(self.kind, _line_no(raw, len(raw), self._line))
        # Hold back the last non-blank line (it may be the CRC line), at most 256 bytes of it.
        stop = len(raw.rstrip(_WS))
        cut = max(raw.rfind(b"\n", 0, stop) + 1, stop - 256, 0)
        if cut:
            self._take(cut, False)

    def _take(self, end: int, final: bool) -> None:
        raw = self._raw
        with memoryview(raw) as view:
            data, used, self._crc = _decode(view[:end], final, self._crc, raw, 0, self._line)
        if self._padded and data:
            raise ArmorError("base64 data after padding", line=self._line)
        self._padded = self._padded or raw[:used].rstrip(_WS).endswith(b"=")
        self._out += data
        self._drop(used)

    def _finish(self, dash: int, end_eol: int) -> None:
        raw = self._raw
        end_start = raw.rfind(b"\n", 0, dash) + 1
        if raw[end_start:dash].strip(_WS) or (end_start == 0 and not self._clean):
            self._take(dash + 1, True)  # a '-' inside a base64 line: the decoder reports it
        _check_end(raw[end_start:end_eol], self.kind, lambda: _line_no(raw, end_start, self._line))
        body_end, crc_line = _split_crc(raw, 0, end_start, self._clean)
        crc_line_no = _line_no(raw, body_end, self._line)
        size = len(raw)
        self._take(body_end, True)
        if crc_line is not None:
            _verify_crc(crc_line, self._crc, self._strict, lambda: crc_line_no)
        if self._multiple:  # go on after the END line with the next block, if any
            self._drop(min(end_eol + 1, size) - (size - len(self._raw)))
            self._crc, self._padded = CRC24_INIT, False
            head = self._read_head(required=False)
            if head is not None:
                self.kind, self.headers = head
                self.blocks += 1
                return
        self._done = True
        self._raw = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` decoded bytes (all that remain if ``size`` is negative); b"" at the END line."""
        while not self._done and (size is None or size < 0 or len(self._out) < size):
            self._decode_more()
        n = len(self._out) if size is None or size < 0 else min(size, len(self._out))
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view:
            target = view.cast("B")
            data = self.read(len(target))
            target[: len(data)] = data
        return len(data)
