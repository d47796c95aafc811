"""User ID (tag 13) and User Attribute (tag 17, kept opaque) packets (RFC 9580 sections 5.11, 5.12)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.openpgp.constants import PacketTag
from engine.openpgp.packet import Packet, write_packet

# "Name (comment) <local@domain>" or a bare address; the RFC leaves the content free (section 5.11).
_ANGLE = re.compile(rb"<([^<>\s]+@[^<>\s]+)>\s*$")
_BARE = re.compile(rb"^\s*([^<>\s@]+@[^<>\s@]+)\s*$")


@dataclass(frozen=True)
class UserID:
    """A User ID (``attribute=False``) or an opaque User Attribute (``attribute=True``)."""

    data: bytes
    attribute: bool = False

    @classmethod
    def parse(cls, packet: Packet) -> UserID:
        return cls(bytes(packet.body), packet.tag == PacketTag.USER_ATTRIBUTE)

    @property
    def tag(self) -> PacketTag:
        return PacketTag.USER_ATTRIBUTE if self.attribute else PacketTag.USER_ID

    def serialize(self) -> bytes:
        return write_packet(self.tag, self.data)

    @property
    def text(self) -> str:
        """The User ID as text (UTF-8, invalid bytes replaced); empty for attributes."""
        return "" if self.attribute else self.data.decode("utf-8", "replace")

    @property
    def email(self) -> str | None:
        """The address in ``<...>`` or a bare ``local@domain`` User ID; None when there is none."""
        if self.attribute:
            return None
        m = _ANGLE.search(self.data) or _BARE.match(self.data)
        return m.group(1).decode("utf-8", "replace") if m else None

    def __str__(self) -> str:
        return self.text if not self.attribute else "[user attribute]"
