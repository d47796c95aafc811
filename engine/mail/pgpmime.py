"""PGP/MIME (RFC 3156) with header protection (RFC 9788, ``hp="cipher"``), built from and back to raw bytes.

The encrypted payload is the original message itself (header section and body, bytes exact), with what
RFC 9788 asks for added: ``hp="cipher"`` on its Content-Type (or a whole ``Content-Type: text/plain;
charset=us-ascii; hp="cipher"`` field when it has none: RFC 2045 §5.2 makes that the default anyway)
and one ``HP-Outer`` field per header field exposed outside (RFC 9788 §2.2); plus the legacy
``protected-headers="v1"`` parameter that today's clients (notmuch, Thunderbird) use to show the Subject.
A first field ``X-Pgpbulk-Restore`` records exactly what was added, so ``unwrap`` removes precisely that
and returns the original bytes. Outside stay only the fields delivery and threading need, plus an
obscured Subject.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from typing import NamedTuple

from engine.errors import StructuralError
from engine.mail.headers import (
    Field,
    Head,
    content_type,
    eol_of,
    field_value,
    iter_delimiter_ends,
    iter_fields,
    parse_content_type,
    parse_head,
    split_header,
)

EncryptPayload = Callable[[bytes], bytes]
DecryptPayload = Callable[[bytes], bytes]

OUTER_FIELDS = ("from", "to", "cc", "date", "message-id", "in-reply-to", "references", "subject")
OBSCURED_SUBJECT = b"[...]"  # RFC 9788 §4.4 (hcp_baseline)
HP_PARAM = b'hp="cipher"'
# The pre-RFC 9788 scheme (draft-autocrypt-lamps-protected-headers) that notmuch, Thunderbird and K-9
# read today; harmless beside hp="cipher", which RFC 9788 readers go by.
LEGACY_PARAM = b'; protected-headers="v1"'
ADDED_CT = b'Content-Type: text/plain; charset=us-ascii; hp="cipher"' + LEGACY_PARAM
_INSERTS = {sep + HP_PARAM + legacy for sep in (b"; ", b" ") for legacy in (b"", LEGACY_PARAM)}
MARKER = b"X-Pgpbulk-Restore:"
_MARKER_RE = re.compile(rb"X-Pgpbulk-Restore: v=1; prefix=(\d+); ct=(param|added); at=(\d+); len=(\d+)\r?\n")
_BEGIN = b"-----BEGIN PGP MESSAGE-----"
_END = b"-----END PGP MESSAGE-----"
PREAMBLE = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
MIME_VERSION = b"MIME-Version: 1.0"  # the first line :func:`wrap` writes after the outer fields it keeps


class NotWrappable(StructuralError):
    """A message that cannot be wrapped or unwrapped; the job carries it over unchanged with the reason."""


def _fields(raw: bytes, header_end: int) -> list[Field]:
    try:
        return list(iter_fields(raw, header_end))
    except StructuralError as e:
        raise NotWrappable(f"malformed header section: {e.reason}", e.offset) from None


def _line(raw: bytes, f: Field, eol: bytes) -> bytes:
    """A field's exact bytes, given a line ending when it is the unterminated last line of the message."""
    data = raw[f.start : f.end]
    return data if data.endswith(b"\n") else data + eol


def _first_content_type(fields: list[Field]) -> Field | None:
    for f in fields:
        if f.name == "content-type":
            return f
    return None


def _content_type_edit(raw: bytes, f: Field | None, eol: bytes) -> tuple[bytes, int, bytes]:
    """Where and what to insert for ``hp="cipher"``: ``(b"param", at, bytes)`` or ``(b"added", 0, field)``;
    ``f`` is the first Content-Type field (None: there is none), ``eol`` the message's line ending."""
    if f is None:
        return b"added", 0, ADDED_CT + eol
    _, params = parse_content_type(field_value(raw, f))
    if "hp" in params:
        raise NotWrappable("Content-Type already carries an hp parameter", f.start)
    end = f.end
    if raw.endswith(b"\r\n", f.start, end):
        end -= 2
    elif raw.endswith(b"\n", f.start, end):
        end -= 1
    sep = b" " if raw[f.colon + 1 : end].rstrip().endswith(b";") else b"; "
    return b"param", end, sep + HP_PARAM + (b"" if "protected-headers" in params else LEGACY_PARAM)


_MARKER_FMT = MARKER + b" v=1; prefix=%d; ct=%s; at=%d; len=%d"


def _protect(raw: bytes, outer_lines: list[bytes], content_type: Field | None, eol: bytes) -> bytes:
    """:func:`protect` with the first Content-Type field and the line ending (``eol_of(raw)``) given."""
    kind, at, insert = _content_type_edit(raw, content_type, eol)
    hp_outer = b"HP-Outer: " + b"HP-Outer: ".join(outer_lines) if outer_lines else b""
    marker = _MARKER_FMT % (len(hp_outer), kind, at, len(insert))
    view = memoryview(raw)  # one copy of the message, not three
    return b"".join((marker, eol, hp_outer, view[:at], insert, view[at:]))


def protect(raw: bytes, outer_lines: list[bytes], fields: list[Field] | None = None) -> bytes:
    """The cryptographic payload: marker, HP-Outer fields, then the original with ``hp="cipher"``.

    ``fields`` are the header's fields when the caller parsed them already.
    """
    if fields is None:
        fields = _fields(raw, split_header(raw)[0])
    return _protect(raw, outer_lines, _first_content_type(fields), eol_of(raw))


def restore(inner: bytes) -> bytes:
    """Undo ``protect`` exactly; raises NotWrappable when the marker does not match the payload."""
    m = _MARKER_RE.match(inner)
    if m is None:
        raise NotWrappable("payload has no pgpbulk restore marker")
    prefix, kind, at, length = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    rest = inner[m.end() :]
    if prefix and not rest.startswith(b"HP-Outer:"):
        raise NotWrappable("restore marker: HP-Outer fields missing")
    body = rest[prefix:]
    added = body[at : at + length]
    if kind == b"added":
        ok = at == 0 and added.startswith(ADDED_CT) and added[len(ADDED_CT) :] in (b"\n", b"\r\n")
    else:
        ok = added in _INSERTS
    if not ok:
        raise NotWrappable("restore marker does not match the payload")
    return body[:at] + body[at + length :]


_OUTER = frozenset(OUTER_FIELDS)


def _outer_header(
    raw: bytes, fields: list[Field], eol: bytes, keep_subject: bool
) -> tuple[list[bytes], Field | None]:
    """The fields kept outside (:data:`OUTER_FIELDS`) as exact lines, the Subject obscured; and the
    first Content-Type field (None when there is none), found in the same pass."""
    subject = None if keep_subject else b"Subject: " + OBSCURED_SUBJECT + eol
    lines: list[bytes] = []
    content_type = None
    for f in fields:
        name, start, end, _ = f
        if name in _OUTER:
            lines.append(subject if subject is not None and name == "subject" else raw[start:end])
        elif content_type is None and name == "content-type":
            content_type = f
    if lines and not lines[-1].endswith(b"\n"):  # only the last field can lack its line ending (as _line)
        lines[-1] += eol
    return lines, content_type


def _block(armored: bytes, eol: bytes) -> bytes | memoryview:
    """The armored block of ``armored`` with the message's line endings (a view when nothing changes:
    the caller joins it into the message, so it is copied once, not twice)."""
    start, end = armored.find(_BEGIN), armored.rfind(_END)
    if start < 0 or end < start:
        raise StructuralError("encrypt_payload did not return an armored OpenPGP message")
    stop = end + len(_END)
    if armored.find(b"\r", start, stop) >= 0:
        return eol.join(armored[start:stop].splitlines())
    return memoryview(armored)[start:stop] if eol == b"\n" else armored[start:stop].replace(b"\n", eol)


class Wrapping(NamedTuple):
    """A message on its way into PGP/MIME: the outer fields, the entity to encrypt, the line ending."""

    outer: list[bytes]
    entity: bytes
    eol: bytes


def prepare(raw: bytes, *, keep_subject: bool = False, head: Head | None = None) -> Wrapping:
    """The first half of :func:`wrap`: check ``raw``, choose the outer fields, build the protected entity
    (raises :class:`NotWrappable`). Encrypt ``entity``, then :func:`assemble`."""
    if not raw or raw.isspace():
        raise NotWrappable("empty message")
    if head is None:
        head = parse_head(raw)
    if head.header_end == 0:
        raise NotWrappable("message has no header section")
    if head.fields is None:
        e = head.error or StructuralError("malformed header section")
        raise NotWrappable(f"malformed header section: {e.reason}", e.offset)
    eol = eol_of(raw)
    outer, content_type = _outer_header(raw, head.fields, eol, keep_subject)
    # tuple.__new__: a named tuple's own __new__ is a Python function (a microsecond per message)
    return tuple.__new__(Wrapping, (outer, _protect(raw, outer, content_type, eol), eol))


def assemble(wrapping: Wrapping, armored: bytes, sha256: str) -> bytes:
    """The second half of :func:`wrap`: the PGP/MIME message around ``armored`` (the encrypted entity);
    ``sha256`` (hex digest of the original message) names the MIME boundary."""
    return b"".join(assemble_parts(wrapping, armored, sha256))


def assemble_parts(
    wrapping: Wrapping, armored: bytes, sha256: str
) -> tuple[bytes, bytes, bytes | memoryview, bytes]:
    """:func:`assemble` in four pieces, not joined: ``(outer, top, block, tail)``, where ``outer`` holds
    the outer fields kept (the only lines that may need mbox quoting) and the rest is what we generated
    (MIME structure and armor: no line starts with ``From `` or ``>``); ``block`` may be a view."""
    outer, _, eol = wrapping
    block = _block(armored, eol)
    boundary = b"pgpbulk-" + sha256[:32].encode()
    top, tail = _skeleton(eol)
    return b"".join(outer), top % (boundary, boundary, boundary), block, tail % boundary


def wrap(
    raw: bytes,
    encrypt_payload: EncryptPayload,
    *,
    keep_subject: bool = False,
    head: Head | None = None,
    sha256: str | None = None,
) -> bytes:
    """Encrypt one message into PGP/MIME with header protection; line endings follow the input.

    ``head`` (``parse_head(raw)``) and ``sha256`` (hex digest of ``raw``) save work when the caller
    has them already. :func:`prepare` then :func:`assemble` are the same in two steps (for encrypting
    many messages' entities at once).
    """
    wrapping = prepare(raw, keep_subject=keep_subject, head=head)
    armored = encrypt_payload(wrapping.entity)
    return assemble(wrapping, armored, sha256 or hashlib.sha256(raw).hexdigest())


@functools.cache
def _skeleton(eol: bytes) -> tuple[bytes, bytes]:
    """The MIME structure :func:`wrap` writes around the armored block, with ``%s`` for the boundary:
    what comes after the outer fields and before the block, and what follows the block."""
    top = [
        MIME_VERSION,
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";',
        b' boundary="%s"',
        b"",
        PREAMBLE,
        b"--%s",
        b"Content-Type: application/pgp-encrypted",
        b"Content-Description: PGP/MIME version identification",
        b"",
        b"Version: 1",
        b"",
        b"--%s",
        b'Content-Type: application/octet-stream; name="encrypted.asc"',
        b"Content-Description: OpenPGP encrypted message",
        b'Content-Disposition: inline; filename="encrypted.asc"',
        b"",
    ]
    return b"".join(line + eol for line in top), eol + eol + b"--%s--" + eol


def armored_span(raw: bytes) -> tuple[int, int, int]:
    """``(start, end, header_end)``: where part 2's armored message lies in a PGP/MIME message."""
    header_end, body_start = split_header(raw)
    try:
        ct = content_type(raw, header_end)
    except StructuralError as e:
        raise NotWrappable(f"malformed header section: {e.reason}", e.offset) from None
    ctype, params = ct or ("text/plain", {})
    if ctype != "multipart/encrypted" or params.get("protocol", "").lower() != "application/pgp-encrypted":
        raise NotWrappable("not a PGP/MIME encrypted message")
    if not params.get("boundary"):
        raise NotWrappable("multipart/encrypted without a boundary")
    starts = delimiter_ends(raw, params["boundary"].encode("latin-1"), body_start)
    if len(starts) < 3:
        raise NotWrappable("PGP/MIME message without its encrypted part")
    begin, end = raw.find(_BEGIN, starts[1], starts[2]), raw.rfind(_END, starts[1], starts[2])
    if begin < 0 or end < begin:
        raise NotWrappable("encrypted part holds no armored OpenPGP message")
    return begin, end + len(_END), header_end


def delimiter_ends(raw: bytes, boundary: bytes, start: int = 0) -> list[int]:
    """Where each boundary delimiter line, opening or closing, from ``start`` on ends (before its LF):
    :func:`~engine.mail.headers.iter_delimiter_ends` as a list."""
    return list(iter_delimiter_ends(raw, boundary, start))


def _encrypted_part(raw: bytes) -> tuple[bytes, int]:
    """The armored message of part 2 of a PGP/MIME message and the header end of the outer message."""
    begin, end, header_end = armored_span(raw)
    return raw[begin:end] + b"\n", header_end


def replace_armored(raw: bytes, transform: Callable[[bytes], bytes]) -> bytes:
    """The same PGP/MIME message with part 2's armored message replaced by ``transform(armored)``.

    Everything else (outer header, MIME structure, boundary, line endings) stays byte for byte.
    """
    begin, end, _ = armored_span(raw)
    new = transform(raw[begin:end] + b"\n")
    start, stop = new.find(_BEGIN), new.rfind(_END)
    if start < 0 or stop < start:
        raise StructuralError("transform did not return an armored OpenPGP message")
    return raw[:begin] + eol_of(raw).join(new[start : stop + len(_END)].splitlines()) + raw[end:]


def _merge_foreign(raw: bytes, header_end: int, inner: bytes) -> bytes:
    """A message not made by us: its inner entity, under outer fields it does not itself carry."""
    inner_end, _ = split_header(inner)
    try:
        names = {f.name for f in iter_fields(inner, inner_end)}
        ct = content_type(inner, inner_end)
    except StructuralError:
        names, ct = set(), None
    if ct is not None and "hp" in ct[1]:
        return inner  # RFC 9788: the protected header section is the real one
    keep = [
        _line(raw, f, eol_of(raw))
        for f in _fields(raw, header_end)
        if not f.name.startswith("content-") and f.name not in names
    ]
    return b"".join(keep) + inner


def unwrap(raw: bytes, decrypt_payload: DecryptPayload) -> bytes:
    """Decrypt a PGP/MIME message; ours come back as the original bytes exactly, others merged."""
    armored, header_end = _encrypted_part(raw)
    inner = decrypt_payload(armored)
    if inner.startswith(MARKER):
        return restore(inner)
    return _merge_foreign(raw, header_end, inner)
