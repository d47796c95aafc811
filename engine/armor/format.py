"""Armor's fixed parts (RFC 9580 §6.2): block kinds, BEGIN/END lines, ``Key: Value`` headers, CRC line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine import _native
from engine.errors import InvalidArgument

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


def _crc_line(crc: int) -> bytes:
    return b"=" + _native.kernel("armor").encode_body(crc.to_bytes(3, "big"), 4)
