"""Literal Data packet, tag 11 (RFC 9580 section 5.9): format, file name, date, then the data.

We write format ``b`` (binary) unless asked for ``t`` or ``u`` (text; ``sop encrypt --as=text``), an empty
file name and date 0 unless the caller gives them, as Sequoia does: the metadata is not covered by any signature and leaks information, and the archive jobs care
only about the bytes. (gpg writes the input file's name and a time stamp.) On read, every format
(``b``, ``t``, ``u``, ``m``, and unknown octets) is accepted and the data returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import InvalidArgument
from engine.openpgp.constants import PacketTag
from engine.openpgp.packet import BodyReader, Packet, write_packet


@dataclass(frozen=True, slots=True)
class LiteralData:
    """A literal data packet. ``data`` is omitted from the repr on purpose."""

    data: bytes = field(repr=False)
    format: int = ord("b")
    filename: bytes = b""
    date: int = 0

    @classmethod
    def parse(cls, packet: Packet) -> LiteralData:
        body = packet.body
        if len(body) >= 6 and len(body) >= 6 + body[1]:  # the common case, without a BodyReader
            n = body[1]
            date = int.from_bytes(body[2 + n : 6 + n], "big")
            return cls(bytes(body[6 + n :]), body[0], bytes(body[2 : 2 + n]), date)
        r = BodyReader.of(packet, "literal data")
        fmt = r.u8("format")
        name = r.take(r.u8("file name length"), "file name")
        date = r.u32("date")
        return cls(r.rest(), fmt, name, date)

    def header(self) -> bytes:
        """The body prefix before the data (format, name, date): what a streaming writer emits first."""
        return literal_header(self.format, self.filename, self.date)

    def serialize(self) -> bytes:
        """The whole packet, header included."""
        return write_packet(PacketTag.LITERAL, self.header() + self.data)


LITERAL_FORMATS = {"b": ord("b"), "t": ord("t"), "u": ord("u")}


def format_octet(fmt: str | int) -> int:
    """The format octet for ``fmt``: 'b' (binary), 't' (text) or 'u' (UTF-8 text); RFC 9580 section 5.9.

    The octet is only a hint to the reader: we never convert line endings, on write or on read."""
    octet = LITERAL_FORMATS.get(fmt) if isinstance(fmt, str) else fmt
    if octet not in LITERAL_FORMATS.values():
        raise InvalidArgument(f"literal data format must be 'b', 't' or 'u', not {fmt!r}")
    return octet  # type: ignore[return-value]


def literal_header(fmt: int = ord("b"), filename: bytes = b"", date: int = 0) -> bytes:
    """Format octet, file name with its length octet, four-octet date."""
    if len(filename) > 255:
        raise ValueError("literal data file name longer than 255 octets")
    return bytes((fmt, len(filename))) + filename + (date & 0xFFFFFFFF).to_bytes(4, "big")
