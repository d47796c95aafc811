"""A bounds-checked cursor over one packet body, for the content parsers of each packet type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import MalformedPacket

if TYPE_CHECKING:
    from engine.openpgp.packet import Packet


class BodyReader:
    """A cursor over one packet body; truncation raises MalformedPacket with the absolute offset."""

    __slots__ = ("base", "data", "pos", "source", "what")

    def __init__(
        self, data: bytes | memoryview, base: int = 0, source: str | None = None, what: str = "packet"
    ):
        self.data = data
        self.base = base
        self.pos = 0
        self.source = source
        self.what = what

    @classmethod
    def of(cls, packet: Packet, what: str = "packet") -> BodyReader:
        return cls(packet.body, packet.body_offset, packet.source, what)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def fail(self, reason: str, at: int | None = None) -> MalformedPacket:
        pos = self.pos if at is None else at
        return MalformedPacket(f"{self.what}: {reason}", offset=self.base + pos, source=self.source)

    def take(self, n: int, name: str = "field") -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.fail(f"truncated {name}: need {n} bytes, {len(self.data) - self.pos} remain")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u8(self, name: str = "octet") -> int:
        return self.take(1, name)[0]

    def u16(self, name: str = "two-octet field") -> int:
        return int.from_bytes(self.take(2, name), "big")

    def u32(self, name: str = "four-octet field") -> int:
        return int.from_bytes(self.take(4, name), "big")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} unexpected trailing bytes")
