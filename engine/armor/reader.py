"""Streaming dearmor (:class:`ArmorReader`): one block or a run of blocks, in memory bounded by the chunk size."""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from engine.armor.format import _WS, CRC24_INIT
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
