"""OpenPGP packet framing (RFC 9580 section 4): headers, lengths, partial bodies. Knows nothing of contents.

Reading:
- :func:`iter_packets` walks bytes and yields :class:`Packet` objects whose ``body`` is a zero-copy
  ``memoryview`` of the input (a joined ``bytes`` when the body used partial lengths).
- :func:`iter_packets_stream` walks a binary file object and yields :class:`StreamPacket` objects whose
  body is read incrementally (``read(n)``); unread body bytes are skipped when the iteration moves on.

Writing: :func:`write_packet` (one new-format packet), :class:`PacketWriter` (a streaming packet body with
partial body lengths, constant memory).

Every framing error is a :class:`~engine.errors.MalformedPacket` carrying the exact byte offset; no
allocation is larger than the input actually present.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from engine.errors import MalformedPacket
from engine.openpgp.reader import BodyReader

__all__ = [
    "BodyReader",
    "Packet",
    "PacketWriter",
    "StreamPacket",
    "encode_length",
    "iter_packets",
    "iter_packets_stream",
    "packet_header",
    "write_packet",
]

MIN_FIRST_PARTIAL = 512  # RFC 9580 section 4.2.1.4: the first partial length is at least 512 octets
MAX_PARTIAL = 1 << 30
_STREAM_BUFFER = 1 << 16


@dataclass(frozen=True)
class Packet:
    """One packet read from bytes.

    ``offset`` is where its header starts in the input, ``header_len`` the size of the first header
    (partial length octets of later chunks are not counted), ``length`` the whole encoded size.
    ``raw`` is the packet exactly as encoded (header included), for byte-exact copies.
    """

    tag: int
    body: bytes | memoryview
    offset: int = 0
    header_len: int = 0
    length: int = 0
    new_format: bool = True
    partial: bool = False
    indeterminate: bool = False
    source: str | None = None
    raw: bytes | memoryview = field(default=b"", repr=False)

    @property
    def body_offset(self) -> int:
        """Input offset of the first body byte."""
        return self.offset + self.header_len

    def error(self, reason: str, at: int = 0) -> MalformedPacket:
        """A MalformedPacket about this packet, ``at`` bytes into its body."""
        return MalformedPacket(reason, offset=self.body_offset + at, source=self.source)


def _tag_and_length_kind(first: int, offset: int, source: str | None) -> tuple[int, bool, int]:
    """Decode the first header octet: (tag, new_format, old length type or -1)."""
    if not first & 0x80:
        raise MalformedPacket(f"not a packet header (octet 0x{first:02x}, bit 7 clear)", offset, source)
    if first & 0x40:
        tag, new, kind = first & 0x3F, True, -1
    else:
        tag, new, kind = (first >> 2) & 0x0F, False, first & 0x03
    if tag == 0:
        raise MalformedPacket("packet tag 0 is reserved", offset, source)
    return tag, new, kind


def _new_length(
    data: bytes | memoryview, pos: int, end: int, offset: int, source: str | None
) -> tuple[int, int, bool]:
    """Decode a new-format length at ``pos``: (length, octets used, is_partial)."""
    if pos >= end:
        raise MalformedPacket("truncated packet header: length missing", offset, source)
    o1 = data[pos]
    if o1 < 192:
        return o1, 1, False
    if o1 < 224:
        if pos + 1 >= end:
            raise MalformedPacket("truncated packet header: two-octet length", offset, source)
        return ((o1 - 192) << 8) + data[pos + 1] + 192, 2, False
    if o1 == 255:
        if pos + 5 > end:
            raise MalformedPacket("truncated packet header: five-octet length", offset, source)
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), 5, False
    return 1 << (o1 & 0x1F), 1, True


def iter_packets(data: bytes | bytearray | memoryview, source: str | None = None) -> Iterator[Packet]:
    """Yield the packets in ``data`` in order; MalformedPacket at the first framing error."""
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    end = len(view)
    pos = 0
    while pos < end:
        pkt = _read_one(view, pos, end, source)
        pos += pkt.length
        yield pkt


def _read_one(view: memoryview, start: int, end: int, source: str | None) -> Packet:
    tag, new, kind = _tag_and_length_kind(view[start], start, source)
    pos = start + 1
    partial = indeterminate = False
    if new:
        length, used, partial = _new_length(view, pos, end, start, source)
        pos += used
    elif kind == 3:
        length, indeterminate = end - pos, True
    else:
        size = 1 << kind
        if pos + size > end:
            raise MalformedPacket("truncated packet header: old-format length", start, source)
        length = int.from_bytes(view[pos : pos + size], "big")
        pos += size
    header_len = pos - start
    if not partial:
        if length > end - pos:
            raise MalformedPacket(
                f"truncated packet: tag {tag} body declares {length} bytes, {end - pos} remain", start, source
            )
        stop = pos + length
        return Packet(
            tag,
            view[pos:stop],
            start,
            header_len,
            stop - start,
            new,
            False,
            indeterminate,
            source,
            view[start:stop],
        )
    chunks: list[memoryview] = []
    while True:
        if length > end - pos:
            raise MalformedPacket(
                f"truncated packet: partial body chunk declares {length} bytes, {end - pos} remain",
                pos,
                source,
            )
        chunks.append(view[pos : pos + length])
        pos += length
        if not partial:
            break
        length, used, partial = _new_length(view, pos, end, pos, source)
        pos += used
    return Packet(
        tag, b"".join(chunks), start, header_len, pos - start, new, True, False, source, view[start:pos]
    )


class StreamPacket:
    """One packet being read from a file object; its body is read with :meth:`read`.

    Attributes as in :class:`Packet` except ``body`` (use :meth:`read` / :meth:`read_all`); ``length``
    is unknown (-1) until the body has been consumed for partial and indeterminate packets.
    """

    def __init__(
        self,
        stream: _Stream,
        tag: int,
        offset: int,
        header_len: int,
        new_format: bool,
        length: int,
        partial: bool,
        indeterminate: bool,
    ) -> None:
        self._s = stream
        self.tag = tag
        self.offset = offset
        self.header_len = header_len
        self.new_format = new_format
        self.partial = partial
        self.indeterminate = indeterminate
        self.source = stream.source
        self._remaining = length  # bytes left in the current chunk (-1: to EOF)
        self._last_chunk = not partial
        self._done = False
        self.body_read = 0

    @property
    def body_offset(self) -> int:
        return self.offset + self.header_len

    def error(self, reason: str, at: int = 0) -> MalformedPacket:
        return MalformedPacket(reason, offset=self.body_offset + at, source=self.source)

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` body bytes (all remaining when ``n < 0``); b"" at the end of the body."""
        if n < 0:
            return self.read_all()
        out = bytearray()
        while len(out) < n and not self._done:
            if self._remaining == 0:
                if self._last_chunk:
                    self._done = True
                    break
                self._next_chunk()
                continue
            want = n - len(out) if self._remaining < 0 else min(n - len(out), self._remaining)
            got = self._s.read(want)
            if self._remaining < 0:
                if not got:
                    self._done = True
                    break
            else:
                if len(got) < want:
                    raise MalformedPacket(
                        f"truncated packet: tag {self.tag} body ends early", self._s.pos, self.source
                    )
                self._remaining -= len(got)
            out += got
        self.body_read += len(out)
        return bytes(out)

    def read_all(self, limit: int | None = None) -> bytes:
        """The rest of the body; MalformedPacket when it exceeds ``limit`` bytes."""
        parts = []
        total = 0
        while True:
            chunk = self.read(_STREAM_BUFFER)
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if limit is not None and total > limit:
                raise self.error(f"packet body larger than the limit of {limit} bytes")
            parts.append(chunk)

    @property
    def body(self) -> bytes:
        """The whole body (reads what is left); for small packets only."""
        return self.read_all()

    def skip(self) -> None:
        """Discard the unread rest of the body."""
        while self.read(_STREAM_BUFFER):
            pass

    def _next_chunk(self) -> None:
        start = self._s.pos
        head = self._s.read(1)
        if not head:
            raise MalformedPacket("truncated packet: partial body length missing", start, self.source)
        o1 = head[0]
        extra = 1 if 192 <= o1 < 224 else 4 if o1 == 255 else 0
        buf = head + self._s.read(extra)
        length, _, partial = _new_length(buf, 0, len(buf), start, self.source)
        self._remaining = length
        self._last_chunk = not partial


class _Stream:
    """A file object with a position counter."""

    def __init__(self, fileobj: BinaryIO, source: str | None) -> None:
        self.f = fileobj
        self.pos = 0
        self.source = source

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        while data is not None and 0 < len(data) < n:  # raw streams may return short reads
            more = self.f.read(n - len(data))
            if not more:
                break
            data += more
        data = data or b""
        self.pos += len(data)
        return data


def iter_packets_stream(fileobj: BinaryIO, source: str | None = None) -> Iterator[StreamPacket]:
    """Yield the packets of a binary file object; each body must be used before the next step."""
    s = _Stream(fileobj, source)
    while True:
        start = s.pos
        head = s.read(1)
        if not head:
            return
        tag, new, kind = _tag_and_length_kind(head[0], start, source)
        partial = indeterminate = False
        if new:
            o1 = s.read(1)
            if not o1:
                raise MalformedPacket("truncated packet header: length missing", start, source)
            extra = 1 if 192 <= o1[0] < 224 else 4 if o1[0] == 255 else 0
            buf = o1 + s.read(extra)
            length, _, partial = _new_length(buf, 0, len(buf), start, source)
        elif kind == 3:
            length, indeterminate = -1, True
        else:
            buf = s.read(1 << kind)
            if len(buf) < 1 << kind:
                raise MalformedPacket("truncated packet header: old-format length", start, source)
            length = int.from_bytes(buf, "big")
        pkt = StreamPacket(s, tag, start, s.pos - start, new, length, partial, indeterminate)
        yield pkt
        pkt.skip()


def encode_length(n: int) -> bytes:
    """A new-format definite body length (RFC 9580 section 4.2.1)."""
    if n < 0 or n > 0xFFFFFFFF:
        raise ValueError(f"packet length out of range: {n}")
    if n < 192:
        return bytes((n,))
    if n < 8384:
        n -= 192
        return bytes(((n >> 8) + 192, n & 0xFF))
    return b"\xff" + n.to_bytes(4, "big")


def packet_header(tag: int, length: int, old_format: bool = False) -> bytes:
    """Header of a packet with a definite ``length``; old format only for tags < 16."""
    if not 0 < tag < 64:
        raise ValueError(f"packet tag out of range: {tag}")
    if not old_format:
        return bytes((0xC0 | tag,)) + encode_length(length)
    if tag > 15:
        raise ValueError(f"tag {tag} cannot be written in the old format")
    if length < 0x100:
        return bytes((0x80 | tag << 2, length))
    if length < 0x10000:
        return bytes((0x81 | tag << 2,)) + length.to_bytes(2, "big")
    return bytes((0x82 | tag << 2,)) + length.to_bytes(4, "big")


def write_packet(tag: int, body: bytes | bytearray | memoryview, old_format: bool = False) -> bytes:
    """One whole packet (new format unless asked otherwise)."""
    return packet_header(tag, len(body), old_format) + bytes(body)


class PacketWriter(io.RawIOBase):
    """Writes one packet of tag ``tag`` to ``fileobj`` with partial body lengths, in constant memory.

    Chunks are ``chunk_size`` bytes (a power of two, 512 to 2**30); a body shorter than one chunk is
    written as a single definite-length packet. ``close()`` finishes the packet, not ``fileobj``.
    """

    def __init__(self, fileobj: BinaryIO, tag: int, chunk_size: int = 1 << 16) -> None:
        super().__init__()
        if chunk_size < MIN_FIRST_PARTIAL or chunk_size > MAX_PARTIAL or chunk_size & (chunk_size - 1):
            raise ValueError("chunk_size must be a power of two between 512 and 2**30")
        self._f = fileobj
        self._tag = tag
        self._chunk = chunk_size
        self._code = bytes((224 + chunk_size.bit_length() - 1,))
        self._buf = bytearray()
        self._started = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed PacketWriter")
        self._buf += data
        while len(self._buf) > self._chunk:  # keep at least one byte for the final definite chunk
            if not self._started:
                self._f.write(bytes((0xC0 | self._tag,)))
                self._started = True
            self._f.write(self._code)
            self._f.write(self._buf[: self._chunk])
            del self._buf[: self._chunk]
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        if self._started:
            self._f.write(encode_length(len(self._buf)) + bytes(self._buf))
        else:
            self._f.write(write_packet(self._tag, self._buf))
        self._buf = bytearray()
        super().close()
