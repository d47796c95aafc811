"""v6 keys, v6 PKESK and SEIPD v2 (RFC 9580) against pysequoia, in process.

No peer on Debian 12 reads v6 (gpg 2.2, sq 0.27, rnp 0.16); pysequoia (Sequoia 2.x with its RFC 9580
profile) does, so it is the oracle here: our v6 certificate and messages decrypted by it, its v6
certificate and messages decrypted by us, in both directions.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest

from engine.openpgp import keygen, message
from engine.openpgp.keys import read_cert, read_certs
from engine.openpgp.provider import InProcessKeyProvider

try:
    import pysequoia as ps
except ImportError:  # an oracle CI must have (pyproject's test extra): skip only outside CI
    if os.environ.get("PGPBULK_REQUIRE_PEERS"):
        raise
    pytest.skip("pysequoia not installed", allow_module_level=True)
if not hasattr(ps, "Profile") or not hasattr(ps, "Tsk"):
    pytest.fail("this pysequoia has no RFC 9580 profile (pyproject asks for >= 0.1.30)", pytrace=False)


def _decryptor(secret: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ps.Cert.from_bytes(secret).secrets.decryptor()


def _shape(ct: bytes) -> tuple[int, tuple[int, ...]]:
    parsed = message.parse_message(ct)
    return parsed.version, tuple(p.version for p in parsed.pkesks)


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    cert = keygen.generate("Us <us@example.org>", "ed25519", version=6)
    return {
        "cert": cert,
        "secret": keygen.export(cert, secret=True, armor=False),
        "public": keygen.export(cert, armor=False),
    }


@pytest.fixture(scope="module")
def theirs() -> dict[str, Any]:
    tsk = ps.Tsk.generate("Them <them@example.org>", profile=ps.Profile.RFC9580)
    secret = bytes(tsk)
    assert read_certs(secret)[0].primary.version == 6
    return {"tsk": tsk, "secret": secret, "public": bytes(tsk.extract_certificate())}


@pytest.mark.parametrize("size", [0, 1, 8192, 300_000])
def test_our_v6_messages_decrypt_in_pysequoia(ours: dict[str, Any], size: int) -> None:
    plaintext = os.urandom(size)
    ct = message.encrypt(plaintext, [ours["cert"].public()])
    assert _shape(ct) == (2, (6,))
    assert ps.decrypt(ct, _decryptor(ours["secret"])).bytes == plaintext


def test_pysequoia_v6_messages_decrypt_here(ours: dict[str, Any]) -> None:
    plaintext = b"from sequoia " * 500
    ct = ps.encrypt(plaintext, [ps.Cert.from_bytes(ours["public"])], armor=False)
    assert _shape(ct) == (2, (6,))
    result = message.decrypt(ct, InProcessKeyProvider([ours["cert"]]))
    assert result.plaintext == plaintext and result.integrity == "aead"


def test_their_v6_certificate_both_ways(theirs: dict[str, Any]) -> None:
    cert = read_cert(theirs["public"])
    assert cert.primary.version == 6 and cert.encryption_subkey() is not None
    plaintext = b"to a sequoia v6 key"
    ct = message.encrypt(plaintext, [cert])
    assert _shape(ct) == (2, (6,))
    assert ps.decrypt(ct, _decryptor(theirs["secret"])).bytes == plaintext
    back = ps.encrypt(plaintext, [ps.Cert.from_bytes(theirs["public"])], armor=False)
    provider = InProcessKeyProvider(read_certs(theirs["secret"]))
    assert message.decrypt(back, provider).plaintext == plaintext


def test_rewrapped_v6_message_decrypts_in_pysequoia(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    plaintext = os.urandom(5000)
    ct = ps.encrypt(plaintext, [ps.Cert.from_bytes(ours["public"])], armor=False)
    parsed = message.parse_message(ct)
    sk = message.decrypt_session_key(parsed, InProcessKeyProvider([ours["cert"]]))
    moved = message.rewrap(parsed, sk, [read_cert(theirs["public"])])
    assert bytes(message.parse_message(moved).data.raw) == bytes(parsed.data.raw)
    assert ps.decrypt(moved, _decryptor(theirs["secret"])).bytes == plaintext
