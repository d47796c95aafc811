"""Certificates without peers: RFC 9580 Appendix A samples, keygen round trips, binding and validity rules."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import PgpBulkError, UnsupportedError
from engine.openpgp import keygen
from engine.openpgp.constants import Features, KeyFlags, PacketTag, PublicKeyAlgorithm, SignatureType
from engine.openpgp.keys import Cert, read_cert, read_certs
from engine.openpgp.packet import iter_packets
from engine.openpgp.secret_key import SecretKey, WrongPassphrase
from engine.openpgp.signature import Signature, Subpacket, binding_data

FIXTURES = Path(__file__).parent / "fixtures"
RFC_PRIMARY = "CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9"
RFC_SUBKEY = "12C83F1E706F6308FE151A417743A1F033790E93E9978488D1DB378DA9930885"


@pytest.fixture(scope="module")
def ed_cert() -> Cert:
    return keygen.generate("Alice <alice@example.org>", created=int(time.time()) - 1000)


def test_rfc9580_a3_certificate() -> None:
    cert = read_cert((FIXTURES / "rfc9580_a3_v6_cert.asc").read_bytes())
    assert cert.fingerprint_hex == RFC_PRIMARY and cert.version == 6
    assert cert.key_id == bytes.fromhex(RFC_PRIMARY[:16])  # v6 key IDs are the leading octets
    assert cert.primary.algorithm is PublicKeyAlgorithm.ED25519
    assert cert.valid_at() and not cert.user_ids and cert.key_flags() == KeyFlags.CERTIFY | KeyFlags.SIGN
    assert cert.supports_seipd_v2 and cert.features & Features.SEIPD_V1
    sub = cert.encryption_subkey()
    assert (
        sub is not None and sub.fingerprint_hex == RFC_SUBKEY and sub.algorithm is PublicKeyAlgorithm.X25519
    )


def test_rfc9580_a4_secret_key_unlocks() -> None:
    cert = read_cert((FIXTURES / "rfc9580_a4_v6_secret.asc").read_bytes())
    assert cert.is_secret and cert.fingerprint_hex == RFC_PRIMARY
    sub = cert.secret_for(bytes.fromhex(RFC_SUBKEY))
    assert sub is not None and not sub.is_protected
    unlocked = sub.unlock()
    assert unlocked.private.public_key().public_bytes_raw() == cert.subkeys[0].key.material.public  # type: ignore[union-attr]
    # the public half re-serializes byte for byte
    assert (
        cert.public().serialize() == read_cert((FIXTURES / "rfc9580_a3_v6_cert.asc").read_bytes()).serialize()
    )


@pytest.mark.slow
def test_rfc9580_a5_locked_key_argon2_aead() -> None:
    cert = read_cert((FIXTURES / "rfc9580_a5_v6_secret_locked.asc").read_bytes())
    sub = cert.secret_for(bytes.fromhex(RFC_SUBKEY))
    assert sub is not None and sub.usage == 253 and sub.s2k is not None and sub.s2k.type == 4
    unlocked = sub.unlock("correct horse battery staple")  # Argon2id t=1 p=4 m=2**21 KiB, AES-256 OCB
    plain = read_cert((FIXTURES / "rfc9580_a4_v6_secret.asc").read_bytes()).subkeys[0].secret
    assert plain is not None
    assert unlocked.private.private_bytes_raw() == plain.unlock().private.private_bytes_raw()


def test_keygen_v4_structure(ed_cert: Cert) -> None:
    assert ed_cert.primary.algorithm is PublicKeyAlgorithm.EDDSA_LEGACY and ed_cert.valid_at()
    (uid,) = ed_cert.user_ids
    assert uid.email == "alice@example.org" and uid.valid_at()
    sub = ed_cert.encryption_subkey()
    assert sub is not None and sub.algorithm is PublicKeyAlgorithm.ECDH
    assert (sub.curve_oid, sub.kdf_hash, sub.kdf_cipher) == (bytes.fromhex("2b060104019755010501"), 8, 7)
    assert ed_cert.key_flags() == KeyFlags.CERTIFY | KeyFlags.SIGN and not ed_cert.supports_seipd_v2
    again = read_cert(ed_cert.serialize(secret=True))
    assert again.serialize(secret=True) == ed_cert.serialize(secret=True)
    assert [k.fingerprint for k in again.secret_keys()] == [ed_cert.fingerprint, sub.fingerprint]


def test_keygen_v6_and_passphrase() -> None:
    cert = keygen.generate("Six <six@example.org>", version=6, passphrase="pw", s2k=_cheap_s2k())
    assert cert.version == 6 and cert.supports_seipd_v2 and cert.valid_at()
    sk = cert.secret_keys()[1]
    assert sk.usage == 253
    with pytest.raises(WrongPassphrase):
        sk.unlock("nope")
    assert sk.unlock("pw").private.public_key().public_bytes_raw() == sk.public.material.public  # type: ignore[union-attr]


def _cheap_s2k():  # type: ignore[no-untyped-def]
    from engine.openpgp.s2k import S2K

    return S2K.iterated(count=1024)


def test_unprotected_secret_needs_no_passphrase_and_protected_does(ed_cert: Cert) -> None:
    assert ed_cert.secret is not None and ed_cert.secret.unlock().algorithm is PublicKeyAlgorithm.EDDSA_LEGACY
    locked = keygen.generate("L <l@example.org>", "ed25519", passphrase="s3", s2k=_cheap_s2k())
    with pytest.raises(PgpBulkError, match="needs a passphrase"):
        locked.secret_keys()[0].unlock()
    assert locked.secret_keys()[1].unlock("s3").private is not None


def _flip_in_packet(data: bytes, tag: int, nth: int, at_end: int = 3) -> bytes:
    """Flip one byte near the end of the ``nth`` packet of ``tag``."""
    seen = 0
    for p in iter_packets(data):
        if p.tag == tag:
            if seen == nth:
                pos = p.offset + p.length - at_end
                return data[:pos] + bytes((data[pos] ^ 0x01,)) + data[pos + 1 :]
            seen += 1
    raise AssertionError("packet not found")


def test_bad_binding_signature_ignores_subkey(ed_cert: Cert) -> None:
    data = ed_cert.public().serialize()
    broken = read_cert(_flip_in_packet(data, PacketTag.SIGNATURE, 1))  # second sig: the subkey binding
    assert broken.subkeys and not broken.subkeys[0].bindings
    assert broken.encryption_subkey() is None and broken.valid_at()
    no_uid = read_cert(_flip_in_packet(data, PacketTag.SIGNATURE, 0))  # the User ID self-signature
    assert not no_uid.user_ids[0].valid_at() and not no_uid.valid_at() and no_uid.encryption_subkey() is None


def _add_subkey(cert: Cert, priv: object, created: int, expires: int | None) -> tuple[Cert, bytes]:
    """Bind a fresh X25519-legacy subkey to ``cert`` (which must hold an unprotected primary secret)."""
    from engine.openpgp.keygen import _pair

    assert cert.secret is not None
    sub, _ = _pair("ed25519", 4, created, True)
    hashed = [Subpacket(2, created.to_bytes(4, "big")), Subpacket(27, b"\x0c")]
    if expires:
        hashed.append(Subpacket(9, expires.to_bytes(4, "big")))
    sig = Signature.create(
        cert.primary, priv, SignatureType.SUBKEY_BINDING, binding_data(cert.primary, sub), hashed
    )
    return read_cert(cert.public().serialize() + sub.serialize() + sig.serialize()), sub.fingerprint


def test_encryption_subkey_newest_valid_and_expiry(ed_cert: Cert) -> None:
    priv = ed_cert.secret.unlock().private  # type: ignore[union-attr]
    now = int(time.time())
    first = ed_cert.encryption_subkey()
    assert first is not None
    cert, newer = _add_subkey(ed_cert, priv, now - 500, expires=None)
    assert cert.encryption_subkey().fingerprint == newer  # type: ignore[union-attr]
    assert cert.encryption_subkey(at=now - 700).fingerprint == first.fingerprint  # type: ignore[union-attr]
    expiring, fp = _add_subkey(ed_cert, priv, now - 500, expires=100)
    assert expiring.encryption_subkey(at=now - 450).fingerprint == fp  # type: ignore[union-attr]
    assert expiring.encryption_subkey().fingerprint == first.fingerprint  # type: ignore[union-attr]


def test_subkey_revocation_and_cert_revocation(ed_cert: Cert) -> None:
    priv = ed_cert.secret.unlock().private  # type: ignore[union-attr]
    sub = ed_cert.subkeys[0].key
    now = int(time.time())
    rev = Signature.create(
        ed_cert.primary,
        priv,
        SignatureType.SUBKEY_REVOCATION,
        binding_data(ed_cert.primary, sub),
        [Subpacket(2, now.to_bytes(4, "big")), Subpacket(29, b"\x02compromised")],
    )
    revoked = read_cert(ed_cert.public().serialize() + rev.serialize())
    assert revoked.subkeys[0].revocations and revoked.encryption_subkey() is None
    assert revoked.encryption_subkey(at=now - 10) is None  # a hard revocation applies at every time
    krev = Signature.create(
        ed_cert.primary,
        priv,
        SignatureType.KEY_REVOCATION,
        ed_cert.primary.hashed_form(),
        [Subpacket(2, now.to_bytes(4, "big")), Subpacket(29, b"\x01superseded")],
    )
    pkts = list(iter_packets(ed_cert.public().serialize()))
    data = bytes(pkts[0].raw) + krev.serialize() + b"".join(bytes(p.raw) for p in pkts[1:])
    soft = read_cert(data)
    assert soft.is_revoked() and not soft.valid_at() and soft.encryption_subkey() is None
    assert soft.valid_at(now - 10)  # a soft revocation applies from its creation on


def test_minimal_keeps_one_user_id(ed_cert: Cert) -> None:
    priv = ed_cert.secret.unlock().private  # type: ignore[union-attr]
    from engine.openpgp.signature import certification_data
    from engine.openpgp.userid import UserID

    other = UserID(b"Other <other@example.org>")
    now = int(time.time()) - 100
    sig = Signature.create(
        ed_cert.primary,
        priv,
        0x13,
        certification_data(ed_cert.primary, other.data),
        [Subpacket(2, now.to_bytes(4, "big"))],
    )
    pkts = list(iter_packets(ed_cert.public().serialize()))
    two = b"".join(bytes(p.raw) for p in pkts[:3]) + other.serialize() + sig.serialize()
    two += b"".join(bytes(p.raw) for p in pkts[3:])
    cert = read_cert(two)
    assert [u.email for u in cert.user_ids] == ["alice@example.org", "other@example.org"]
    small = read_cert(cert.minimal("OTHER@example.org"))
    assert [u.text for u in small.user_ids] == ["Other <other@example.org>"]
    assert small.encryption_subkey().fingerprint == cert.encryption_subkey().fingerprint  # type: ignore[union-attr]
    assert [p.tag for p in iter_packets(cert.minimal("alice@example.org"))] == [6, 13, 2, 14, 2]
    with pytest.raises(UnsupportedError):
        cert.minimal("nobody@example.org")


def test_keyring_of_several_certs(ed_cert: Cert) -> None:
    rsa = keygen.generate("R <r@example.org>", "rsa2048")
    ring = ed_cert.public().serialize() + rsa.public().serialize() + keygen.export(ed_cert, armor=False)
    certs = read_certs(ring)
    assert [c.fingerprint for c in certs] == [ed_cert.fingerprint, rsa.fingerprint, ed_cert.fingerprint]
    assert [c.is_secret for c in certs] == [False, False, False]
    armored = keygen.export(rsa, secret=True)
    assert armored.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert read_cert(armored).secret_keys()[1].unlock().private.key_size == 2048


def test_secret_stub_is_unusable(ed_cert: Cert) -> None:
    from engine.openpgp.s2k import S2K

    stub = SecretKey(ed_cert.primary, 254, b"", None, None, S2K(101, 2, gnu_mode=1001))
    assert not stub.has_secret
    with pytest.raises(PgpBulkError, match="stub"):
        stub.unlock("x")
    parsed = SecretKey.parse(next(iter_packets(stub.serialize())))
    assert parsed.s2k is not None and parsed.s2k.gnu_mode == 1001 and not parsed.has_secret


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_certs_raise_only_typed_errors(data: st.DataObject) -> None:
    blob = bytearray(_SAMPLE)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    try:
        for cert in read_certs(bytes(blob[:cut])):
            cert.valid_at()
            cert.encryption_subkey()
    except PgpBulkError:
        pass


_SAMPLE = (FIXTURES / "rfc9580_a4_v6_secret.asc").read_bytes()
_SAMPLE = read_cert(_SAMPLE).serialize(secret=True)
