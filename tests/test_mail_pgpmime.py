"""PGP/MIME wrapping with RFC 9788 header protection, and its exact inverse (no peer needed here)."""

from __future__ import annotations

import base64
import email
import email.policy
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.errors import StructuralError
from engine.mail.pgpmime import NotWrappable, protect, restore, unwrap, wrap
from tests import mailgen


def fake_encrypt(data: bytes) -> bytes:
    """A reversible stand-in for OpenPGP: base64 inside armor lines (the real thing is in test_mail_job)."""
    body = base64.encodebytes(data[::-1])
    return b"-----BEGIN PGP MESSAGE-----\n\n" + body + b"-----END PGP MESSAGE-----\n"


def fake_decrypt(armored: bytes) -> bytes:
    inner = armored.split(b"-----BEGIN PGP MESSAGE-----")[1].split(b"-----END PGP MESSAGE-----")[0]
    return base64.b64decode(b"".join(inner.split()))[::-1]


def _inner(wrapped: bytes) -> bytes:
    part = re.search(rb"-----BEGIN PGP MESSAGE-----.*-----END PGP MESSAGE-----", wrapped, re.S)
    assert part is not None
    return fake_decrypt(part.group(0))


WRAPPABLE = [k for k in mailgen.KINDS if k not in ("malformed_header", "empty")]


def test_wrap_unwrap_exact_for_every_kind() -> None:
    messages = mailgen.generate(seed=21, count=45)
    done = 0
    for i, raw in enumerate(messages):
        if mailgen.kind_of(i) not in WRAPPABLE:
            with pytest.raises(NotWrappable):
                wrap(raw, fake_encrypt)
            continue
        out = wrap(raw, fake_encrypt)
        assert unwrap(out, fake_decrypt) == raw
        assert unwrap(wrap(raw, fake_encrypt, keep_subject=True), fake_decrypt) == raw
        done += 1
    assert done == 39


def test_structure_parses_with_email() -> None:
    raw = mailgen.generate(seed=2, count=1)[0]
    out = wrap(raw, fake_encrypt)
    msg = email.message_from_bytes(out, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/encrypted"
    assert msg.get_param("protocol") == "application/pgp-encrypted"
    assert msg["Subject"] == "[...]"
    assert msg["Message-ID"] == "<msg0@example.org>"
    assert msg["From"] == "Alice <alice@example.org>"
    assert msg["X-Mailer"] is None and msg["Return-Path"] is None
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/pgp-encrypted", "application/octet-stream"]
    assert parts[0].get_payload().strip() == "Version: 1"
    assert parts[1].get_payload().lstrip().startswith("-----BEGIN PGP MESSAGE-----")
    assert not msg.defects and not any(p.defects for p in parts)


def test_protected_headers_inside() -> None:
    raw = mailgen.generate(seed=2, count=1)[0]
    inner = _inner(wrap(raw, fake_encrypt))
    msg = email.message_from_bytes(inner, policy=email.policy.default)
    assert msg.get_param("hp") == "cipher"
    assert msg["Subject"] == "Plain #0"
    assert msg["X-Mailer"] == "mailgen"
    assert "Subject: [...]" in msg.get_all("HP-Outer")
    assert "Message-ID: <msg0@example.org>" in msg.get_all("HP-Outer")
    kept = wrap(raw, fake_encrypt, keep_subject=True)
    assert b"\nSubject: Plain #0\n" in kept.split(b"\n\n")[0] + b"\n"


def test_missing_content_type_is_added_and_removed() -> None:
    raw = b"From: a@example.org\nSubject: old\n\nhello"
    inner = _inner(wrap(raw, fake_encrypt))
    msg = email.message_from_bytes(inner)
    assert msg.get_content_type() == "text/plain"
    assert msg.get_param("charset") == "us-ascii" and msg.get_param("hp") == "cipher"
    assert restore(inner) == raw


@pytest.mark.parametrize(
    "ct",
    [
        b"text/plain",
        b"text/plain;",
        b"text/plain; charset=utf-8 (comment)",
        b'multipart/mixed;\r\n boundary="x";\r\n',
        b"text/plain  ",
    ],
)
def test_hp_param_on_any_content_type(ct: bytes) -> None:
    raw = b"Subject: s\r\nContent-Type: " + ct + b"\r\nX-After: 1\r\n\r\nbody\r\n"
    out = wrap(raw, fake_encrypt)
    assert b"\n" not in out.replace(b"\r\n", b"")  # CRLF in, CRLF out
    inner = _inner(out)
    assert email.message_from_bytes(inner).get_param("hp") == "cipher"
    assert unwrap(out, fake_decrypt) == raw


def test_last_line_content_type_without_newline() -> None:
    raw = b"Subject: s\nContent-Type: text/plain"
    assert unwrap(wrap(raw, fake_encrypt), fake_decrypt) == raw


def test_folded_outer_fields_copied_byte_exact() -> None:
    raw = mailgen.generate(seed=4, count=7)[6]
    assert mailgen.kind_of(6) == "folded"
    outer = wrap(raw, fake_encrypt).split(b"\n\n")[0]
    refs = re.search(rb"(?m)^References:.*\n(?:[ \t].*\n)*", raw)
    assert refs is not None and refs.group(0) in outer + b"\n"
    assert b"that continues here" not in outer


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\n\nno header", "no header"),
        (b"garbage line\n\nbody", "malformed header"),
        (b'Content-Type: text/plain; hp="clear"\n\nsigned', "hp parameter"),
    ],
)
def test_not_wrappable(raw: bytes, reason: str) -> None:
    with pytest.raises(NotWrappable, match=reason):
        wrap(raw, fake_encrypt)


def test_restore_rejects_tampered_payload() -> None:
    inner = protect(b"Content-Type: text/plain\n\nx\n", [b"Subject: [...]\n"])
    assert restore(inner) == b"Content-Type: text/plain\n\nx\n"
    with pytest.raises(NotWrappable):
        restore(inner.replace(b'hp="cipher"', b'hp="cypher"'))
    with pytest.raises(NotWrappable):
        restore(inner.replace(b"HP-Outer:", b"HP-Other:"))
    with pytest.raises(NotWrappable):
        restore(b"Content-Type: text/plain\n\nx\n")


def test_bad_payload_function_output() -> None:
    with pytest.raises(StructuralError):
        wrap(b"Subject: x\n\nbody\n", lambda data: b"not armor")


def test_foreign_pgp_mime_is_merged() -> None:
    """A message encrypted elsewhere: outer headers (no Content-*) over the decrypted entity."""
    inner = b'Content-Type: text/plain; protected-headers="v1"\nSubject: real\n\nsecret\n'
    outer = wrap(b"Subject: real\nFrom: a@example.org\n\nx", fake_encrypt)
    foreign = re.sub(rb"-----BEGIN PGP MESSAGE-----.*-----END PGP MESSAGE-----", fake_encrypt(inner).strip(),
                     outer, flags=re.S)  # fmt: skip
    merged = unwrap(foreign, fake_decrypt)
    assert merged == b"From: a@example.org\nMIME-Version: 1.0\n" + inner
    hp = b'Content-Type: text/plain; hp="cipher"\nSubject: real\n\nsecret\n'
    foreign_hp = foreign.replace(fake_encrypt(inner).strip(), fake_encrypt(hp).strip())
    assert unwrap(foreign_hp, fake_decrypt) == hp


def test_unwrap_rejects_non_pgp_mime() -> None:
    with pytest.raises(NotWrappable):
        unwrap(b"Subject: x\n\nbody\n", fake_decrypt)
    with pytest.raises(NotWrappable):
        unwrap(mailgen.generate(seed=1, count=12)[11].replace(b"-----BEGIN", b"-----BEGUN"), fake_decrypt)


def test_legacy_protected_headers_param_not_doubled() -> None:
    raw = b'Content-Type: text/plain; protected-headers="v1"\nSubject: s\n\nbody\n'
    inner = _inner(wrap(raw, fake_encrypt))
    assert inner.count(b"protected-headers") == 1 and b'hp="cipher"' in inner
    assert restore(inner) == raw


@st.composite
def _delimited(draw: st.DrawFn) -> tuple[bytes, bytes, int]:
    """Text made mostly of delimiter-like pieces of its boundary: lines starting with ``--B``, ``--B--``,
    trailing blanks, CRs, LFs and near misses."""
    boundary = draw(st.lists(st.sampled_from([b"a", b"b", b"-", b"="]), min_size=1, max_size=4).map(b"".join))
    pieces = [b"--" + boundary, b"\n", b"\r", b" ", b"\t", b"--", b"-", b"x", boundary]
    raw = b"".join(draw(st.lists(st.sampled_from(pieces), max_size=40)))
    return raw, boundary, draw(st.integers(0, 12))


@settings(max_examples=600, deadline=None)
@given(case=_delimited())
@example(case=(b"x\n--a--\t \r\n--a\r--a \n", b"a", 0))
@example(case=(b"--a\t\n--ab\n-\n--a", b"a", 1))
def test_delimiter_ends_match_the_rfc2046_regex(case: tuple[bytes, bytes, int]) -> None:
    """The find-based delimiter scan gives exactly the ends of the multiline regex's matches."""
    from engine.mail.pgpmime import delimiter_ends

    raw, boundary, start = case
    delim = re.compile(rb"(?m)^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$")
    assert delimiter_ends(raw, boundary, start) == [m.end() for m in delim.finditer(raw, start)]
