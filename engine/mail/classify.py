"""What a message is, judged from its raw bytes: headers, and the first part's headers when needed.

Only whole-message encryption counts as "already encrypted": a plain message that merely quotes an
armored block is PLAIN (so it is still encrypted), and inline PGP means the text body *is* one armored
message. S/MIME opaque signed data (``smime-type=signed-data``) is SIGNED, other pkcs7-mime is SMIME.
"""

from __future__ import annotations

import enum
import re

from engine.errors import StructuralError
from engine.mail.headers import (
    Field,
    Head,
    content_type,
    field_value,
    iter_delimiter_ends,
    parse_content_type,
    parse_head,
    split_header,
)

_PKCS7 = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_BEGIN = b"-----BEGIN PGP MESSAGE-----"
_END = b"-----END PGP MESSAGE-----"


class MailClass(str, enum.Enum):
    """Classes of messages; the value is the name used in reports."""

    PLAIN = "plain"
    PGP_MIME = "pgp-mime"
    INLINE_PGP = "inline-pgp"
    SMIME = "smime"
    SIGNED = "signed"
    EMPTY = "empty"
    MALFORMED = "malformed"

    @property
    def encrypted(self) -> bool:
        """True for the classes that ``encrypt`` passes through unchanged."""
        return self in ENCRYPTED


#: The classes ``encrypt`` passes through unchanged (a tuple: ``in`` finds a member by identity, where
#: each ``MailClass.X`` costs a lookup through the enum's metaclass).
ENCRYPTED = (MailClass.PGP_MIME, MailClass.INLINE_PGP, MailClass.SMIME)


def _classify_type(ctype: str, params: dict[str, str]) -> MailClass | None:
    if ctype == "multipart/encrypted":
        proto = params.get("protocol", "").lower()
        if proto == "application/pgp-encrypted":
            return MailClass.PGP_MIME
        if proto in _PKCS7:
            return MailClass.SMIME
        return None
    if ctype in _PKCS7:
        signed = params.get("smime-type", "").lower() == "signed-data"
        return MailClass.SIGNED if signed else MailClass.SMIME
    if ctype in ("application/octet-stream", "application/pkcs7") and (
        params.get("name", "").lower().endswith(".p7m")
    ):
        return MailClass.SMIME
    if ctype == "multipart/signed":
        return MailClass.SIGNED
    return None


def _line_start_find(raw: bytes, needle: bytes, start: int) -> int:
    """The first ``needle`` at or after ``start`` that starts a line (or is at ``start``), or -1."""
    i = raw.find(needle, start)
    while i > start and raw[i - 1] != 0x0A:
        i = raw.find(needle, i + 1)
    return i


def _first_part(raw: bytes, body_start: int, boundary: str) -> tuple[str, dict[str, str]] | None:
    """Content-Type of the first body part of a multipart (None when it has no parseable one)."""
    encoded = boundary.encode("latin-1")
    # the first opening delimiter line (a regex per boundary, unique per message, cost some 100 us)
    line_end = next(iter_delimiter_ends(raw, encoded, body_start, close=False), -1)
    if line_end < 0:
        return None
    begin, needle = min(line_end + 1, len(raw)), b"--" + encoded
    end = _line_start_find(raw, needle, begin)  # the next line starting with the delimiter
    part = raw[begin:end] if end >= 0 else raw[begin:]
    header_end, _ = split_header(part)
    try:
        return content_type(part, header_end) or ("text/plain", {})
    except StructuralError:
        return None


_SPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() removes
_LEADING_SPACE = re.compile(rb"[ \t\n\r\x0b\x0c]*")


def _is_inline_pgp(raw: bytes, start: int = 0) -> bool:
    """Whether ``raw[start:]``, stripped, is one armored message (without copying the body)."""
    begin = _LEADING_SPACE.match(raw, start).end()  # type: ignore[union-attr]
    if not raw.startswith(_BEGIN, begin):
        return False
    end = len(raw)
    while end > begin and raw[end - 1] in _SPACE:
        end -= 1
    return raw.endswith(_END, begin, end)


def _disposition_p7m(raw: bytes, f: Field) -> bool:
    """Whether the Content-Disposition field ``f`` names a ``.p7m`` file."""
    value = raw[f.colon + 1 : f.end].decode("latin-1")
    _, params = parse_content_type("x/x;" + value.partition(";")[2])
    return params.get("filename", "").lower().endswith(".p7m")


def classify(raw: bytes, head: Head | None = None) -> MailClass:
    """Classify one message from its raw bytes; never raises on malformed input.

    ``head`` is ``parse_head(raw)`` when the caller has it already (the header is then parsed once).
    """
    if not raw or raw.isspace():  # as ``not raw.strip()``, without copying the message
        return MailClass.EMPTY
    header_end, body_start, fields, _ = head if head is not None else parse_head(raw)
    if fields is None or header_end == 0:
        return MailClass.MALFORMED
    ct_field: Field | None = None  # the first Content-Type and Content-Disposition fields
    disposition: Field | None = None
    for f in fields:
        name = f.name
        if name == "content-type":
            ct_field = ct_field or f
        elif name == "content-disposition":
            disposition = disposition or f
    ct = parse_content_type(field_value(raw, ct_field)) if ct_field is not None else None
    p7m = disposition is not None and _disposition_p7m(raw, disposition)
    ctype, params = ct or ("text/plain", {})
    found = _classify_type(ctype, params)
    if found is not None:
        return found
    if p7m and ctype in ("application/octet-stream", "application/pkcs7"):
        return MailClass.SMIME
    if ctype.startswith("multipart/") and "boundary" in params:
        first = _first_part(raw, body_start, params["boundary"])
        inner = _classify_type(*first) if first is not None else None
        if inner in (MailClass.PGP_MIME, MailClass.SMIME):
            # e.g. a mailing list that wrapped an encrypted message in multipart/mixed with a footer
            return inner
    if (ctype.startswith("text/") or ct is None) and _is_inline_pgp(raw, body_start):
        return MailClass.INLINE_PGP
    return MailClass.PLAIN
