"""Pure-Python twin of ``engine._mailpass_c``: the byte-level passes over a message of an archive job.

Same names, arguments, results and errors as the native kernel; the tests run every case on both.

* :func:`fields`: the header fields of ``raw[:header_end]`` (RFC 5322 §2.2), each a ``cls`` (a named
  tuple) of ``(name, start, end, colon)`` with ``name`` lowercased, made as ``tuple.__new__`` makes it; a line that is neither a field nor a
  continuation raises ``ValueError(reason, offset)``.
* :func:`split`: ``(header_end, body_start)``: where the header section ends (after the line ending
  before the first empty line) and the body starts; ``(len(raw), len(raw))`` without an empty line.
* :func:`unquote`: mboxrd, one ``>`` less on every ``>From `` line (any depth).
* :func:`pread_unquoted`: ``unquote(os.pread(fd, length, offset))``, or None when the file ends before
  ``length`` bytes (the native one reads into the result and unquotes it in place).
* :func:`quote_join`: ``head + quote(raw[:upto]) + raw[upto:] + tail`` in one copy, where mboxrd's quote
  adds one ``>`` to every ``From `` and ``>From `` line (``upto`` is a line start, or ``len(raw)``).

``unquote`` returns ``raw`` itself when nothing changes.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["features", "fields", "pread_unquoted", "quote_join", "split", "unquote"]

# At the first line: the field name and colon, or nothing (a bad line); continuations are refused before.
_LINE_START = re.compile(rb"(?:([!-9;-~]+)[ \t]*:|(?=[^ \t]))")
# After a line ending: anchored on "\n", a literal the regex engine finds at memchr speed.
_NEXT_LINE = re.compile(rb"\n(?:([!-9;-~]+)[ \t]*:|(?=[^ \t]))")
_BLANK_LINE = re.compile(rb"\n(\r?\n)")
_UNQUOTE = re.compile(rb"\n>(?=>*From )")
_QUOTE = re.compile(rb"\n(?=>*From )")
_QUOTED_FIRST = re.compile(rb">+From ")
_FROM_FIRST = re.compile(rb">*From ")

# Names as they are usually spelled, already decoded and lowercased.
_NAMES = {
    n.encode(): n.lower()
    for n in (
        "From", "To", "Cc", "Bcc", "Date", "Subject", "Message-ID", "Message-Id", "In-Reply-To", "References",
        "Reply-To", "Sender", "Return-Path", "Received", "MIME-Version", "Mime-Version", "Content-Type",
        "Content-Transfer-Encoding", "Content-Disposition", "Content-Length", "X-Mailer", "User-Agent",
        "List-Id", "List-Unsubscribe", "DKIM-Signature", "Authentication-Results", "Delivered-To",
        "Received-SPF", "Precedence", "Organization", "Thread-Topic", "Thread-Index", "X-Priority",
        "Importance", "Content-Language", "Status", "X-Status", "X-Keywords", "X-UID", "Lines",
    )
}  # fmt: skip


def features() -> dict[str, bool]:
    """What this implementation is: ``{"native": False}``."""
    return {"native": False}


def split(raw: bytes) -> tuple[int, int]:
    """``(header_end, body_start)``: the header section is ``raw[:header_end]`` (its last line ending
    included), the body ``raw[body_start:]``; without an empty line the whole message is header."""
    if raw.startswith(b"\r\n"):
        return 0, 2
    if raw.startswith(b"\n"):
        return 0, 1
    m = _BLANK_LINE.search(raw)
    if m is None:
        return len(raw), len(raw)
    return m.start() + 1, m.end()


def fields(raw: bytes, header_end: int, cls: type[tuple[Any, ...]]) -> list[Any]:
    """The fields of ``raw[:header_end]``: a field starts at each line that does not start with a space
    or tab (RFC 5322 §2.2.3) and runs to the next one; its name is the run of printable characters but
    ``:`` at the line start, followed by optional blanks and the colon (at ``colon``)."""
    if not issubclass(cls, tuple):
        raise TypeError("cls must be a subclass of tuple")
    header_end = min(header_end, len(raw))
    if header_end <= 0:
        return []
    if raw[:1] in (b" ", b"\t"):
        raise ValueError("header continuation line before any field", 0)
    m = _LINE_START.match(raw, 0, header_end)
    if m is None or m.group(1) is None:
        raise ValueError("header line is not a field", 0)
    out: list[Any] = []
    append, names, new = out.append, _NAMES, tuple.__new__
    name, start, colon = m.group(1), 0, m.end() - 1
    for m in _NEXT_LINE.finditer(raw, colon, header_end):
        nxt = m.group(1)
        if nxt is None:
            raise ValueError("header line is not a field", m.start() + 1)
        at = m.start() + 1
        append(new(cls, (names.get(name) or name.decode("ascii").lower(), start, at, colon)))
        name, start, colon = nxt, at, m.end() - 1
    append(new(cls, (names.get(name) or name.decode("ascii").lower(), start, header_end, colon)))
    return out


def unquote(raw: bytes) -> bytes:
    """mboxrd: remove one ``>`` from every ``>From `` line (any depth); ``raw`` itself when none."""
    if b">From " not in raw:  # the substring test is much faster than any regex
        return raw
    out = _UNQUOTE.sub(b"\n", raw)
    return out[1:] if _QUOTED_FIRST.match(out) else out


def pread_unquoted(fd: int, offset: int, length: int) -> bytes | None:
    """The ``length`` bytes at ``offset`` of ``fd`` as :func:`unquote` leaves them (one ``pread``), or
    None when the file ends before."""
    if length < 0:
        raise ValueError("negative length")
    data = os.pread(fd, length, offset)
    return unquote(data) if len(data) == length else None


def quote_join(head: bytes, raw: bytes, upto: int, tail: bytes) -> bytes:
    """``head + quote(raw[:upto]) + raw[upto:] + tail`` (mboxrd quoting of the lines that start before
    ``upto``, which must be ``len(raw)`` or the start of a line)."""
    upto = max(0, min(upto, len(raw)))
    part = raw[:upto]
    if b"From " in part:
        part = _QUOTE.sub(b"\n>", part)
        if _FROM_FIRST.match(part):
            part = b">" + part
    return b"".join((head, part, memoryview(raw)[upto:], tail))
