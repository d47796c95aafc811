"""Classification of messages from raw bytes."""

from __future__ import annotations

import pytest

from engine.mail.classify import MailClass, classify
from tests import mailgen

ARMOR = b"-----BEGIN PGP MESSAGE-----\nx\n-----END PGP MESSAGE-----"
P7M_DISPOSITION = b'Content-Disposition: attachment; filename="smime.p7m"'

EXPECTED = {
    "plain": MailClass.PLAIN,
    "eightbit": MailClass.PLAIN,
    "binary": MailClass.PLAIN,
    "from_lines": MailClass.PLAIN,
    "no_final_newline": MailClass.PLAIN,
    "no_content_type": MailClass.PLAIN,
    "folded": MailClass.PLAIN,
    "attachment": MailClass.PLAIN,
    "malformed_mime": MailClass.PLAIN,
    "malformed_header": MailClass.MALFORMED,
    "empty": MailClass.EMPTY,
    "pgp_mime": MailClass.PGP_MIME,
    "inline_pgp": MailClass.INLINE_PGP,
    "smime": MailClass.SMIME,
    "signed": MailClass.SIGNED,
}


def test_every_generated_kind() -> None:
    assert set(EXPECTED) == set(mailgen.KINDS)
    for i, raw in enumerate(mailgen.generate(seed=11, count=45)):
        assert classify(raw) is EXPECTED[mailgen.kind_of(i)], (i, mailgen.kind_of(i))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b'Content-Type: Multipart/Encrypted;\n\tprotocol="Application/PGP-Encrypted"; boundary=x\n\n',
            "pgp-mime",
        ),
        (b"Content-Type: multipart/encrypted; protocol=application/pkcs7-mime; boundary=x\n\n", "smime"),
        (b"Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data\n\nMIAG\n", "smime"),
        (b"Content-Type: application/pkcs7-mime; smime-type=signed-data\n\nMIAG\n", "signed"),
        (b'Content-Type: application/octet-stream; name="smime.p7m"\n\nMIAG\n', "smime"),
        (
            b"Content-Type: application/octet-stream\n" + P7M_DISPOSITION + b"\n\nx\n",
            "smime",
        ),
        (b"Content-Type: multipart/signed; boundary=x (a comment)\n\n--x\n", "signed"),
        (b"Subject: q\n\n> -----BEGIN PGP MESSAGE-----\n> quoted only\n", "plain"),
        (b"Subject: q\n\nHi,\n-----BEGIN PGP MESSAGE-----\nabc\n-----END PGP MESSAGE-----\nbye\n", "plain"),
        (
            b"Subject: q\r\n\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nabc\r\n-----END PGP MESSAGE-----\r\n",
            "inline-pgp",
        ),
        (
            b"Content-Type: text/html\n\n-----BEGIN PGP MESSAGE-----\nx\n-----END PGP MESSAGE-----",
            "inline-pgp",
        ),
        (
            b"Content-Type: application/pdf\n\n-----BEGIN PGP MESSAGE-----\nx\n-----END PGP MESSAGE-----",
            "plain",
        ),
        (b"Content-Type: multipart/encrypted; protocol=application/x-unknown\n\n", "plain"),
        (b"Content-Type: ;;;\n\nbody", "plain"),
        (b'Content-Type: text/plain; boundary="unterminated\n\nbody', "plain"),
        (b"\n\nbody without header", "malformed"),
        (b" continuation first\n\nbody", "malformed"),
        (b"\r\n \t\n", "empty"),
    ],
)
def test_cases(raw: bytes, expected: str) -> None:
    assert classify(raw).value == expected


def test_encrypted_first_part_of_mixed() -> None:
    """A list footer wrapped around an encrypted message does not make it plain."""
    raw = (
        b'Content-Type: multipart/mixed; boundary="outer"\n\n--outer\n'
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="in"\n\n'
        b"--in\n...\n--outer\nContent-Type: text/plain\n\nlist footer\n--outer--\n"
    )
    assert classify(raw) is MailClass.PGP_MIME
    assert classify(raw.replace(b"multipart/encrypted", b"text/plain")) is MailClass.PLAIN


def test_encrypted_property() -> None:
    assert {c for c in MailClass if c.encrypted} == {
        MailClass.PGP_MIME,
        MailClass.INLINE_PGP,
        MailClass.SMIME,
    }
