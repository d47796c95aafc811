"""Writing armor: whole buffers (:func:`armor`) and streams (:class:`ArmorWriter`), 64-column lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from engine import _native
from engine.armor.format import CRC24_INIT, LINE_IN, WIDTH, _crc_line, _head, _tail


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
