"""ECDH KDF / key wrap (RFC 6637, RFC 9580 section 11.5), X25519/X448 KEM, RFC 3394 vectors."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from engine.errors import DecryptionFailed, MalformedPacket
from engine.openpgp import ecdh
from engine.openpgp.constants import Curve, HashAlgorithm, PublicKeyAlgorithm, SymmetricAlgorithm

AES256 = SymmetricAlgorithm.AES256


@pytest.mark.parametrize(
    ("kek", "key", "wrapped"),
    [  # RFC 3394 sections 4.1, 4.3, 4.6
        (
            "000102030405060708090A0B0C0D0E0F",
            "00112233445566778899AABBCCDDEEFF",
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
        ),
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF",
            "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7",
        ),
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
        ),
    ],
)
def test_rfc3394_vectors(kek: str, key: str, wrapped: str) -> None:
    k, d = bytes.fromhex(kek), bytes.fromhex(key)
    assert ecdh.key_wrap(k, d).hex().upper() == wrapped == aes_key_wrap(k, d).hex().upper()
    assert ecdh.key_unwrap(k, bytes.fromhex(wrapped)) == d == aes_key_unwrap(k, bytes.fromhex(wrapped))
    with pytest.raises(InvalidUnwrap):
        ecdh.key_unwrap(k, bytes.fromhex(wrapped)[:-1] + b"\x00")


def test_param_string_layout() -> None:
    params = ecdh.EcdhParams(Curve.CURVE25519_LEGACY, HashAlgorithm.SHA256, SymmetricAlgorithm.AES128)
    fpr = bytes(range(20))
    s = params.param_string(fpr)
    oid = bytes.fromhex("2b060104019755010501")
    assert s == bytes((len(oid),)) + oid + bytes((18, 3, 1, 8, 7)) + b"Anonymous Sender    " + fpr


def test_session_key_frame_padding() -> None:
    key = bytes(range(32))
    frame = ecdh.session_key_frame(key, AES256)
    assert len(frame) == 40 and frame[0] == AES256 and frame[-5:] == b"\x05" * 5  # 1+32+2 -> 40
    assert frame[33:35] == (sum(key) & 0xFFFF).to_bytes(2, "big")
    assert ecdh.parse_session_key_frame(frame, True) == (AES256, key)
    assert ecdh.parse_session_key_frame(ecdh.session_key_frame(key, None), False) == (None, key)
    bad = bytearray(frame)
    bad[5] ^= 1
    with pytest.raises(DecryptionFailed):
        ecdh.parse_session_key_frame(bytes(bad), True)
    with pytest.raises(DecryptionFailed):
        ecdh.parse_session_key_frame(frame[:-1] + b"\x09", True)


def _keypair(curve: Curve):  # type: ignore[no-untyped-def]
    if curve is Curve.CURVE25519_LEGACY:
        priv = x25519.X25519PrivateKey.generate()
    else:
        priv = ec.generate_private_key(
            {
                Curve.NIST_P256: ec.SECP256R1(),
                Curve.NIST_P384: ec.SECP384R1(),
                Curve.NIST_P521: ec.SECP521R1(),
            }[curve]
        )
    return priv, priv.public_key()


@pytest.mark.parametrize(
    ("curve", "hash_", "kek"),
    [
        (Curve.CURVE25519_LEGACY, HashAlgorithm.SHA256, SymmetricAlgorithm.AES128),
        (Curve.NIST_P256, HashAlgorithm.SHA256, SymmetricAlgorithm.AES128),
        (Curve.NIST_P384, HashAlgorithm.SHA384, SymmetricAlgorithm.AES192),
        (Curve.NIST_P521, HashAlgorithm.SHA512, SymmetricAlgorithm.AES256),
    ],
)
def test_ecdh_wrap_unwrap(curve: Curve, hash_: HashAlgorithm, kek: SymmetricAlgorithm) -> None:
    params = ecdh.EcdhParams(curve, hash_, kek)
    priv, pub = _keypair(curve)
    fpr, key = os.urandom(20), os.urandom(32)
    point, wrapped = ecdh.ecdh_wrap(params, pub, fpr, key, AES256)
    if curve is Curve.CURVE25519_LEGACY:
        assert len(point) == 33 and point[0] == 0x40
    else:
        assert point[0] == 0x04 and len(point) == 1 + 2 * curve.field_bytes
    assert len(wrapped) == 48  # 40-octet frame + 8
    assert ecdh.ecdh_unwrap(params, priv, fpr, point, wrapped, True) == (AES256, key)
    with pytest.raises(DecryptionFailed):  # the KDF binds the recipient fingerprint
        ecdh.ecdh_unwrap(params, priv, os.urandom(20), point, wrapped, True)
    other, _ = _keypair(curve)
    with pytest.raises(DecryptionFailed):
        ecdh.ecdh_unwrap(params, other, fpr, point, wrapped, True)


def test_bad_points_are_malformed() -> None:
    with pytest.raises(MalformedPacket):
        ecdh.decode_point(Curve.CURVE25519_LEGACY, b"\x04" + bytes(32))
    with pytest.raises(MalformedPacket):
        ecdh.decode_point(Curve.NIST_P256, b"\x04" + bytes(64))


def test_cv25519_secret_is_reversed_mpi() -> None:
    priv = x25519.X25519PrivateKey.generate()
    native = priv.private_bytes_raw()
    again = ecdh.cv25519_private_from_mpi(native[::-1].lstrip(b"\x00"))
    assert again.public_key().public_bytes_raw() == priv.public_key().public_bytes_raw()


@pytest.mark.parametrize("alg", [PublicKeyAlgorithm.X25519, PublicKeyAlgorithm.X448])
def test_native_kem_round_trip(alg: PublicKeyAlgorithm) -> None:
    priv = (
        x25519.X25519PrivateKey.generate()
        if alg == PublicKeyAlgorithm.X25519
        else x448.X448PrivateKey.generate()
    )
    key = os.urandom(32)
    eph, wrapped = ecdh.native_wrap(alg, priv.public_key(), key)
    assert len(eph) == (32 if alg == PublicKeyAlgorithm.X25519 else 56) and len(wrapped) == 40
    assert ecdh.native_unwrap(alg, priv, eph, wrapped) == key
    with pytest.raises(DecryptionFailed):
        ecdh.native_unwrap(alg, priv, eph, wrapped[:-1] + bytes((wrapped[-1] ^ 1,)))
    with pytest.raises(DecryptionFailed):  # low-order point: all-zero shared secret is refused
        ecdh.native_unwrap(alg, priv, bytes(len(eph)), wrapped)


def test_libsodium_ephemeral_matches_cryptography() -> None:
    """The X25519 ephemeral (libsodium) is the secret's public key and agrees with `cryptography`."""
    secret, peer = os.urandom(32), x25519.X25519PrivateKey.generate()
    eph_pub, shared = ecdh.x25519_ephemeral(peer.public_key().public_bytes_raw(), lambda n: secret[:n])
    mine = x25519.X25519PrivateKey.from_private_bytes(secret)
    assert eph_pub == mine.public_key().public_bytes_raw()
    assert shared == mine.exchange(peer.public_key()) == peer.exchange(x25519.X25519PublicKey.from_public_bytes(eph_pub))
    with pytest.raises(ValueError):  # low-order recipient point: all-zero shared secret is refused
        ecdh.x25519_ephemeral(bytes(32))


@pytest.mark.parametrize("alg", [PublicKeyAlgorithm.X25519, PublicKeyAlgorithm.X448])
def test_native_wrap_takes_its_randomness_from_the_caller(alg: PublicKeyAlgorithm) -> None:
    priv = x25519.X25519PrivateKey.generate() if alg == PublicKeyAlgorithm.X25519 else x448.X448PrivateKey.generate()
    key = os.urandom(16)
    one = ecdh.native_wrap(alg, priv.public_key(), key, lambda n: b"\x07" * n)
    assert one == ecdh.native_wrap(alg, priv.public_key(), key, lambda n: b"\x07" * n)
    assert one != ecdh.native_wrap(alg, priv.public_key(), key, lambda n: b"\x08" * n)
    assert ecdh.native_unwrap(alg, priv, one[0], one[1]) == key


@pytest.mark.parametrize("curve", [Curve.CURVE25519_LEGACY, Curve.NIST_P256, Curve.NIST_P384, Curve.NIST_P521])
def test_ecdh_wrap_takes_its_randomness_from_the_caller(curve: Curve) -> None:
    params = ecdh.EcdhParams(curve, HashAlgorithm.SHA512, SymmetricAlgorithm.AES256)
    priv, pub = _keypair(curve)
    fpr, key = os.urandom(20), os.urandom(32)
    one = ecdh.ecdh_wrap(params, pub, fpr, key, AES256, lambda n: b"\x42" * n)
    assert one == ecdh.ecdh_wrap(params, pub, fpr, key, AES256, lambda n: b"\x42" * n)
    assert one[0] != ecdh.ecdh_wrap(params, pub, fpr, key, AES256, lambda n: b"\x43" * n)[0]
    assert ecdh.ecdh_unwrap(params, priv, fpr, one[0], one[1], True) == (AES256, key)
