"""The archive worker's per-message passes: the pool initializer's garbage-collector settings, and the
byte-level passes the worker makes over each message (mboxrd unquoting, the first part of a multipart),
checked against plain reference implementations on both kernels."""

from __future__ import annotations

import gc
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine import _native
from engine.errors import StructuralError
from engine.mail.classify import MailClass, _first_part
from engine.mail.crypto import WORKER_GC_THRESHOLD, CryptoConfig, init_pool_worker
from engine.mail.headers import Field, content_type, split_header
from engine.mail.item import MailItem
from engine.mail.job import _wrappable
from engine.scheduler.start import pool_context
from tests.test_mailpass import _reference_quote


def _gc_settings() -> tuple[int, int]:
    return gc.get_threshold()[0], gc.get_freeze_count()


def test_pool_worker_freezes_its_init_and_raises_the_gc_threshold() -> None:
    ctx = pool_context()  # the pool's own start method (forkserver here)
    with ProcessPoolExecutor(
        1, mp_context=ctx, initializer=init_pool_worker, initargs=(CryptoConfig(),)
    ) as pool:
        threshold, frozen = pool.submit(_gc_settings).result()
    assert threshold == WORKER_GC_THRESHOLD
    assert frozen > 0


def test_pool_initializer_leaves_the_callers_gc_alone() -> None:
    """A run on one worker calls the initializer in the caller's process: its collector stays as it is."""
    before = gc.get_threshold(), gc.get_freeze_count()
    init_pool_worker(CryptoConfig())
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def _first_part_by_regex(raw: bytes, body_start: int, boundary: str) -> tuple[str, dict[str, str]] | None:
    """The first part's Content-Type as the multiline regexes of RFC 2046 find it (the reference)."""
    escaped = re.escape(boundary.encode("latin-1"))
    m = re.compile(rb"(?m)^--" + escaped + rb"[ \t]*\r?$\n?").search(raw, body_start)
    if m is None:
        return None
    part = raw[m.end() :]
    end = re.search(rb"(?m)^--" + escaped, part)
    if end is not None:
        part = part[: end.start()]
    header_end, _ = split_header(part)
    try:
        return content_type(part, header_end) or ("text/plain", {})
    except StructuralError:
        return None


@st.composite
def _multipart_bodies(draw: st.DrawFn) -> tuple[bytes, int, str]:
    """Bodies made of delimiter-like pieces of their boundary, near misses and part headers."""
    boundary = draw(st.lists(st.sampled_from(["a", "b", "-", "=", "\xe9"]), max_size=4).map("".join))
    b = boundary.encode("latin-1")
    pieces = [b"--" + b, b"\n", b"\r", b" ", b"\t", b"--", b"x", b, b"Content-Type: multipart/encrypted",
              b'; protocol="application/pgp-encrypted"', b"; x=", b"\n\n", b" bad line", b"Content-Type: text/html"]  # fmt: skip
    raw = b"".join(draw(st.lists(st.sampled_from(pieces), max_size=40)))
    return raw, draw(st.integers(0, 12)), boundary


@settings(max_examples=800, deadline=None)
@given(case=_multipart_bodies())
@example(case=(b"x\n--a--\n--a \r\nContent-Type: text/html\n\n--a\n", 1, "a"))
@example(case=(b"--a\rx\n--a\t\r\n--ab\n--a", 0, "a"))
@example(case=(b"y--a\n--a\r", 1, "a"))
@example(case=(b"--a\nContent-Type: text/html\n\nbody\n--ab\n", 0, "a"))
@example(case=(b"--a\nContent-Type: text/html; x=--a\n\n--a--\n", 0, "a"))
def test_first_part_is_found_as_the_rfc2046_regexes_find_it(case: tuple[bytes, int, str]) -> None:
    raw, start, boundary = case
    assert _first_part(raw, start, boundary) == _first_part_by_regex(raw, start, boundary)


def _from_lines_everywhere() -> list[bytes]:
    """Messages whose ``From``-like lines start at every offset of a 16-byte block, and at the end."""
    lines = (b"From x", b">From x", b">>From x", b"From", b">Frm x", b">", b"F", b"\r\nFrom ")
    out = []
    for width in range(40):
        for line in lines:
            out.append(b"a" * width + b"\n" + line + b"\n" + b"b" * (width % 7) + b"\n" + line)
            out.append(line + b"\n" + b"c" * width + b"\n" + line + b"\n" + b"d" * (39 - width))
    return out


def test_quoting_finds_from_lines_at_every_offset(tmp_path: Path) -> None:
    """The native kernel skips lines 16 bytes at a time: a ``From`` line anywhere in a block is found."""
    messages = _from_lines_everywhere()
    path = tmp_path / "m"
    path.write_bytes(b"".join(messages))
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        for raw in messages:
            quoted = _reference_quote(raw)
            for name, mod in _native.implementations("mailpass").items():
                assert mod.unquote(raw) == _reference_quote(raw, unquote=True), (name, raw)
                assert mod.unquote(quoted) == raw, (name, raw)
                assert mod.quote_join(b"", raw, len(raw), b"") == quoted, (name, raw)
                assert mod.pread_unquoted(fd, offset, len(raw)) == mod.unquote(raw), (name, raw)
            offset += len(raw)
    finally:
        os.close(fd)


def test_encrypt_wraps_exactly_the_plain_and_signed_messages_not_truncated() -> None:
    encrypted = {MailClass.PGP_MIME, MailClass.INLINE_PGP, MailClass.SMIME}
    assert {c for c in MailClass if c.encrypted} == encrypted
    for cls in MailClass:
        for truncated in (False, True):
            wrapped = cls in (MailClass.PLAIN, MailClass.SIGNED) and not truncated
            assert _wrappable(MailItem(0, b"x", truncated=truncated), cls) is wrapped, (cls, truncated)


def test_field_names_stay_right_when_remembered() -> None:
    """The native kernel hands out a name it made before for the same name: many names (more than it
    remembers, colliding), names that differ only in case or length, and long ones, twice over."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    names = [n for a in letters for b in letters.upper() for n in (a + b, a, a + b + "x")]  # collisions
    names += [f"X-{'Ab' * (i % 25)}-{i}" for i in range(60)] + ["Subject", "SUBJECT", "subjec", "subjectt"]
    raw = b"".join(b"%s: v\n" % n.encode() for n in names) + b"\nbody\n"
    header_end = split_header(raw)[0]
    for mod in _native.implementations("mailpass").values():
        for _ in range(2):
            assert [f.name for f in mod.fields(raw, header_end, Field)] == [n.lower() for n in names]
            for n in names[::-1]:  # one at a time, in another order
                one = b"%s: v\n" % n.encode()
                assert mod.fields(one, len(one), Field)[0].name == n.lower()
