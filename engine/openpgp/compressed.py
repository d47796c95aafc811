"""Compressed Data packet, tag 8 (RFC 9580 section 5.6): algorithm octet, then compressed packets.

Reading is bounded: the caller sets the largest output it accepts and a bomb raises
:class:`DecompressionLimit` (a StructuralError) as soon as that size is passed, having allocated at
most the limit plus one working chunk. Writing is available but off by default in the message layer.
"""

from __future__ import annotations

import bz2
import zlib

from engine.errors import MalformedPacket, StructuralError, UnsupportedAlgorithm
from engine.openpgp.constants import CompressionAlgorithm, PacketTag
from engine.openpgp.packet import Packet, write_packet

_STEP = 1 << 20  # work in 1 MiB steps


class DecompressionLimit(StructuralError):
    """Decompressed data exceeds the caller's limit (possible compression bomb)."""


def decompress(packet: Packet, max_output: int) -> bytes:
    """The decompressed packet stream of a tag 8 packet, at most ``max_output`` octets."""
    body = bytes(packet.body)
    if not body:
        raise packet.error("compressed data packet is empty")
    algorithm = body[0]
    if algorithm == CompressionAlgorithm.UNCOMPRESSED:
        if len(body) - 1 > max_output:
            raise DecompressionLimit(
                f"uncompressed data exceeds {max_output} octets", packet.body_offset, packet.source
            )
        return body[1:]
    try:
        return _inflate(algorithm, body[1:], max_output, packet.body_offset)
    except StructuralError as exc:  # say which stream the offset counts in
        if packet.source is None:
            raise
        raise type(exc)(exc.reason, exc.offset, packet.source) from None


def _inflate(algorithm: int, data: bytes, max_output: int, offset: int) -> bytes:
    out = bytearray()
    if algorithm in (CompressionAlgorithm.ZIP, CompressionAlgorithm.ZLIB):
        d = zlib.decompressobj(-15 if algorithm == CompressionAlgorithm.ZIP else zlib.MAX_WBITS)
        pending = data
        try:
            while pending:
                out += d.decompress(pending, min(_STEP, max_output + 1 - len(out)))
                if len(out) > max_output:
                    raise DecompressionLimit(f"decompressed data exceeds {max_output} octets", offset)
                pending = d.unconsumed_tail
                if d.eof:
                    break
            out += d.flush(max_output + 1 - len(out)) if not d.eof else b""
        except zlib.error as exc:
            raise MalformedPacket(
                f"corrupt {CompressionAlgorithm(algorithm).name} data: {exc}", offset
            ) from None
    elif algorithm == CompressionAlgorithm.BZIP2:
        b = bz2.BZ2Decompressor()
        pending = data
        try:
            while not b.eof:
                out += b.decompress(pending, max_length=min(_STEP, max_output + 1 - len(out)))
                pending = b""
                if len(out) > max_output:
                    raise DecompressionLimit(f"decompressed data exceeds {max_output} octets", offset)
                if b.needs_input:
                    break
        except OSError as exc:
            raise MalformedPacket(f"corrupt BZip2 data: {exc}", offset) from None
    else:
        raise UnsupportedAlgorithm(f"compression algorithm {algorithm}")
    if len(out) > max_output:
        raise DecompressionLimit(f"decompressed data exceeds {max_output} octets", offset)
    return bytes(out)


def compress(
    data: bytes, algorithm: CompressionAlgorithm = CompressionAlgorithm.ZLIB, level: int = 6
) -> bytes:
    """A whole tag 8 packet holding ``data`` (an inner packet stream)."""
    if algorithm == CompressionAlgorithm.ZIP:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        packed = c.compress(data) + c.flush()
    elif algorithm == CompressionAlgorithm.ZLIB:
        packed = zlib.compress(data, level)
    elif algorithm == CompressionAlgorithm.BZIP2:
        packed = bz2.compress(data, 9)
    elif algorithm == CompressionAlgorithm.UNCOMPRESSED:
        packed = data
    else:
        raise UnsupportedAlgorithm(f"compression algorithm {algorithm}")
    return write_packet(PacketTag.COMPRESSED, bytes((algorithm,)) + packed)
