"""PKESK v3/v6: RFC 9580 A.8 sample, parse/serialize, every algorithm, anonymous recipients."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x448, x25519

from engine.armor import dearmor as _dearmor
from engine.errors import DecryptionFailed, MalformedPacket, NoMatchingKey, UnsupportedAlgorithm
from engine.openpgp import message
from engine.openpgp.constants import Curve, HashAlgorithm, PacketTag, PublicKeyAlgorithm, SymmetricAlgorithm
from engine.openpgp.ecdh import EcdhParams
from engine.openpgp.keys import read_certs
from engine.openpgp.packet import iter_packets
from engine.openpgp.pkesk import (
    Pkesk,
    Recipient,
    SessionKey,
    decrypt_session_key,
    encrypt_session_key,
    pkesk_packet,
)
from engine.openpgp.provider import InProcessKeyProvider

A = PublicKeyAlgorithm
AES128, AES256 = SymmetricAlgorithm.AES128, SymmetricAlgorithm.AES256

A4_SECRET_KEY = b"""-----BEGIN PGP PRIVATE KEY BLOCK-----

xUsGY4d/4xsAAAAg+U2nu0jWCmHlZ3BqZYfQMxmZu52JGggkLq2EVD34laMAGXKB
exK+cH6NX1hs5hNhIB00TrJmosgv3mg1ditlsLfCsQYfGwoAAABCBYJjh3/jAwsJ
BwUVCg4IDAIWAAKbAwIeCSIhBssYbE8GCaaX5NUt+mxyKwwfHifBilZwj2Ul7Ce6
2azJBScJAgcCAAAAAK0oIBA+LX0ifsDm185Ecds2v8lwgyU2kCcUmKfvBXbAf6rh
RYWzuQOwEn7E/aLwIwRaLsdry0+VcallHhSu4RN6HWaEQsiPlR4zxP/TP7mhfVEe
7XWPxtnMUMtf15OyA51YBMdLBmOHf+MZAAAAIIaTJINn+eUBXbki+PSAld2nhJh/
LVmFsS+60WyvXkQ1AE1gCk95TUR3XFeibg/u/tVY6a//1q0NWC1X+yui3O24wpsG
GBsKAAAALAWCY4d/4wKbDCIhBssYbE8GCaaX5NUt+mxyKwwfHifBilZwj2Ul7Ce6
2azJAAAAAAQBIKbpGG2dWTX8j+VjFM21J0hqWlEg+bdiojWnKfA5AQpWUWtnNwDE
M0g12vYxoWM8Y81W+bHBw805I8kWVkXU6vFOi+HWvv/ira7ofJu16NnoUkhclkUr
k0mXubZvyl4GBg==
-----END PGP PRIVATE KEY BLOCK-----
"""

A8_X25519_OCB_MESSAGE = b"""-----BEGIN PGP MESSAGE-----

wV0GIQYSyD8ecG9jCP4VGkF3Q6HwM3kOk+mXhIjR2zeNqZMIhRmHzxjV8bU/gXzO
WgBM85PMiVi93AZfJfhK9QmxfdNnZBjeo1VDeVZheQHgaVf7yopqR6W1FT6NOrfS
aQIHAgZhZBZTW+CwcW1g4FKlbExAf56zaw76/prQoN+bAzxpohup69LA7JW/Vp0l
yZnuSj3hcFj0DfqLTGgr4/u717J+sPWbtQBfgMfG9AOIwwrUBqsFE9zW+f1zdlYo
bhF30A+IitsxxA==
-----END PGP MESSAGE-----
"""


def test_rfc9580_a8_pkesk_parses_and_reserializes() -> None:
    binary = _dearmor(A8_X25519_OCB_MESSAGE).data
    pkt = next(iter(iter_packets(binary)))
    p = Pkesk.parse(pkt)
    assert (p.version, p.algorithm, p.key_version) == (6, A.X25519, 6)
    assert p.fingerprint is not None and p.fingerprint.hex().startswith("12c83f1e706f6308")
    eph, cipher, wrapped = p.fields
    assert len(eph) == 32 and cipher is None and len(wrapped) == 24
    assert p.serialize() == bytes(pkt.raw)


def test_rfc9580_a8_message_decrypts_to_hello_world() -> None:
    provider = InProcessKeyProvider(read_certs(_dearmor(A4_SECRET_KEY).data))
    result = message.decrypt(A8_X25519_OCB_MESSAGE, provider)
    assert result.plaintext == b"Hello, world!"
    assert result.integrity == "aead" and result.cipher == AES128
    sk = message.decrypt_session_key(A8_X25519_OCB_MESSAGE, provider)
    assert sk.key.hex() == "dd708f6fa1ed65114d68d2343e7c2f1d"  # RFC 9580 A.8 "session key"


def _pair(alg: A, curve: Curve | None = None) -> tuple[Recipient, object]:
    fpr = os.urandom(20)
    if alg == A.RSA:
        priv = rsa.generate_private_key(65537, 2048)
        return Recipient(alg, fpr, 4, priv.public_key()), priv
    if alg == A.X25519:
        priv = x25519.X25519PrivateKey.generate()
        return Recipient(alg, os.urandom(32), 6, priv.public_key()), priv
    if alg == A.X448:
        priv = x448.X448PrivateKey.generate()
        return Recipient(alg, os.urandom(32), 6, priv.public_key()), priv
    assert curve is not None
    params = EcdhParams(curve, HashAlgorithm.SHA256, AES128)
    priv = (
        x25519.X25519PrivateKey.generate()
        if curve is Curve.CURVE25519_LEGACY
        else ec.generate_private_key(ec.SECP256R1())
    )
    return Recipient(alg, fpr, 4, priv.public_key(), params), priv


CASES = [
    (A.RSA, None),
    (A.ECDH, Curve.CURVE25519_LEGACY),
    (A.ECDH, Curve.NIST_P256),
    (A.X25519, None),
    (A.X448, None),
]


@pytest.mark.parametrize(("alg", "curve"), CASES)
@pytest.mark.parametrize("version", [3, 6])
def test_encrypt_parse_decrypt(alg: A, curve: Curve | None, version: int) -> None:
    recipient, priv = _pair(alg, curve)
    sk = SessionKey(AES256, os.urandom(32))
    wire = encrypt_session_key(recipient, sk, version).serialize()
    pkt = next(iter(iter_packets(wire)))
    assert pkt.tag == PacketTag.PKESK
    parsed = Pkesk.parse(pkt)
    assert parsed.version == version and parsed.key_id == recipient.key_id and not parsed.anonymous
    assert parsed.serialize() == wire
    params = recipient.ecdh
    got = decrypt_session_key(parsed, priv, recipient.fingerprint, params)
    assert got.key == sk.key
    assert got.algorithm == (AES256 if version == 3 else None)


@pytest.mark.parametrize(("alg", "curve"), CASES)
@pytest.mark.parametrize(("version", "anonymous"), [(3, False), (6, False), (3, True), (6, True)])
def test_pkesk_packet_fast_path_matches(
    impl: str, alg: A, curve: Curve | None, version: int, anonymous: bool
) -> None:
    """``pkesk_packet`` (cached parts, used by bulk encryption) writes what ``encrypt_session_key`` would."""
    recipient, priv = _pair(alg, curve)
    sk = SessionKey(AES256, os.urandom(32))
    for _ in range(2):  # the second call runs on the cached parts
        wire = pkesk_packet(recipient, sk, version, anonymous)
        parsed = Pkesk.parse(next(iter(iter_packets(wire))))
        assert parsed.serialize() == wire
        want = encrypt_session_key(recipient, sk, version, anonymous)
        assert (parsed.version, parsed.algorithm, parsed.key_id, parsed.fingerprint) == (
            want.version,
            want.algorithm,
            want.key_id,
            want.fingerprint,
        )
        if alg != A.RSA:  # an RSA ciphertext MPI is sometimes an octet shorter
            sizes = [[len(f) if isinstance(f, bytes) else f for f in p.fields] for p in (parsed, want)]
            assert sizes[0] == sizes[1]
        assert decrypt_session_key(parsed, priv, recipient.fingerprint, recipient.ecdh).key == sk.key


def test_anonymous_recipient_round_trip() -> None:
    recipient, priv = _pair(A.X25519)
    sk = SessionKey(AES256, os.urandom(32))
    for version in (3, 6):
        wire = encrypt_session_key(recipient, sk, version, anonymous=True).serialize()
        parsed = Pkesk.parse(next(iter(iter_packets(wire))))
        assert parsed.anonymous and parsed.key_id == bytes(8)
        assert decrypt_session_key(parsed, priv, recipient.fingerprint).key == sk.key


def test_x25519_refuses_non_aes() -> None:
    recipient, _ = _pair(A.X25519)
    with pytest.raises(UnsupportedAlgorithm):
        encrypt_session_key(recipient, SessionKey(SymmetricAlgorithm.CAMELLIA256, os.urandom(32)))


def test_wrong_key_is_decryption_failed() -> None:
    recipient, _ = _pair(A.RSA)
    _, other = _pair(A.RSA)
    parsed = encrypt_session_key(recipient, SessionKey(AES256, os.urandom(32)))
    with pytest.raises(DecryptionFailed):
        decrypt_session_key(parsed, other, recipient.fingerprint)


def test_truncated_pkesk_reports_offset() -> None:
    recipient, _ = _pair(A.X25519)
    wire = bytearray(encrypt_session_key(recipient, SessionKey(AES256, os.urandom(32))).serialize())
    wire[1] -= 5  # shorten the body: the wrapped key runs past it
    with pytest.raises(MalformedPacket) as err:
        Pkesk.parse(next(iter(iter_packets(bytes(wire[:-5])))))
    assert err.value.offset is not None and err.value.offset > 0
    with pytest.raises(MalformedPacket):
        Pkesk.parse(next(iter(iter_packets(b"\xc1\x02\x05\x00"))))  # unknown version 5


def test_provider_without_matching_key() -> None:
    provider = InProcessKeyProvider(read_certs(_dearmor(A4_SECRET_KEY).data))
    recipient, _ = _pair(A.X25519)
    pkesk = encrypt_session_key(recipient, SessionKey(AES256, os.urandom(32)))
    with pytest.raises(NoMatchingKey):
        provider.decrypt_session_key(pkesk)
    assert len(provider.key_ids()) == 1 and len(next(iter(provider.fingerprints()))) == 32
