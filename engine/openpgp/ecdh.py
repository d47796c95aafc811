"""ECDH session-key wrapping (RFC 6637, RFC 9580 section 11.5) and the X25519/X448 KEM (section 5.1.6-7).

Legacy ECDH (algorithm 18) derives a key-encryption key with a one-step hash KDF over the shared secret
and a parameter string bound to the recipient (curve OID, KDF parameters, "Anonymous Sender", recipient
fingerprint), then AES-key-wraps the session-key frame ``[algo] key checksum`` PKCS#5-padded to a
multiple of 8 octets, as gpg writes it. Curve25519 points are the native u-coordinate prefixed by 0x40;
NIST points are SEC1 uncompressed (0x04 || X || Y).

The RFC 9580 X25519/X448 algorithms (25/26) use HKDF over ``ephemeral || recipient || shared`` and wrap the
bare session key (no checksum, no padding).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap

from engine._native import kernel
from engine.errors import DecryptionFailed, MalformedPacket, UnsupportedAlgorithm
from engine.openpgp.constants import Curve, HashAlgorithm, PublicKeyAlgorithm, SymmetricAlgorithm

_ANONYMOUS_SENDER = b"Anonymous Sender    "
_NIST_CURVES: dict[Curve, ec.EllipticCurve] = {
    Curve.NIST_P256: ec.SECP256R1(),
    Curve.NIST_P384: ec.SECP384R1(),
    Curve.NIST_P521: ec.SECP521R1(),
    Curve.BRAINPOOL_P256: ec.BrainpoolP256R1(),
    Curve.BRAINPOOL_P384: ec.BrainpoolP384R1(),
    Curve.BRAINPOOL_P512: ec.BrainpoolP512R1(),
}
_KDF_HASHES = {
    HashAlgorithm.SHA256: hashlib.sha256,
    HashAlgorithm.SHA384: hashlib.sha384,
    HashAlgorithm.SHA512: hashlib.sha512,
}
_KEK_SIZES = {SymmetricAlgorithm.AES128: 16, SymmetricAlgorithm.AES192: 24, SymmetricAlgorithm.AES256: 32}

try:  # the Rust function behind X25519PublicKey.from_public_bytes(), without its per-call Python wrapper
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl

    x25519_public = _rust_openssl.x25519.from_public_bytes
except (ImportError, AttributeError):  # pragma: no cover - other cryptography versions
    x25519_public = x25519.X25519PublicKey.from_public_bytes

#: Where an ephemeral secret comes from: ``random_bytes(n)`` returns ``n`` octets. ``os.urandom`` by
#: default; a re-encryption passes a deterministic stream (``engine.openpgp.derive``) instead.
RandomBytes = Callable[[int], bytes]

_sodium: tuple[Callable[[bytes], bytes], Callable[[bytes, bytes], bytes]] | None = None


def _libsodium() -> tuple[Callable[[bytes], bytes], Callable[[bytes, bytes], bytes]]:
    """``(crypto_scalarmult_base, crypto_scalarmult)`` from PyNaCl, imported on first use (~5 ms)."""
    global _sodium
    if _sodium is None:
        from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base

        _sodium = (crypto_scalarmult_base, crypto_scalarmult)
    return _sodium


def x25519_ephemeral(recipient: bytes, random_bytes: RandomBytes = os.urandom) -> tuple[bytes, bytes]:
    """``(ephemeral public, shared secret)`` for a raw X25519 ``recipient`` key, with libsodium.

    The ephemeral secret is the 32 octets of ``random_bytes(32)`` (clamped by X25519 itself). An
    all-zero shared secret (a low-order recipient point; libsodium refuses it) is a ValueError, as
    `cryptography`'s exchange raises."""
    base, mult = _libsodium()
    secret = random_bytes(32)
    if len(secret) != 32:
        raise ValueError("an X25519 ephemeral secret is 32 octets")
    try:
        shared = mult(secret, recipient)
    except Exception as exc:  # nacl.exceptions.RuntimeError: the all-zero output of a low-order point
        raise ValueError(f"X25519 key agreement failed: {exc}") from None
    if not any(shared):  # pragma: no cover - libsodium already refuses it
        raise ValueError("X25519 shared secret is all zero")
    return base(secret), shared


EcPrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
EcPublicKey = x25519.X25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class EcdhParams:
    """The recipient-side constants of a legacy ECDH key: curve, KDF hash and key-wrap cipher."""

    curve: Curve
    kdf_hash: HashAlgorithm
    kek_cipher: SymmetricAlgorithm

    def param_string(self, fingerprint: bytes) -> bytes:
        """RFC 9580 section 11.5 KDF parameter string for a recipient (v4 fingerprint: 20 octets)."""
        oid = self.curve.oid
        return b"".join(
            (
                bytes((len(oid),)),
                oid,
                bytes((PublicKeyAlgorithm.ECDH, 3, 1, self.kdf_hash, self.kek_cipher)),
                _ANONYMOUS_SENDER,
                fingerprint,
            )
        )


def key_wrap(kek: bytes, data: bytes) -> bytes:
    """RFC 3394 AES key wrap (the ``pgpcrypto`` kernel: one C call, not 6n Python-level AES calls)."""
    return kernel("pgpcrypto").aes_key_wrap(kek, data)


def key_unwrap(kek: bytes, data: bytes) -> bytes:
    """RFC 3394 AES key unwrap; InvalidUnwrap when the integrity check fails, ValueError on bad sizes."""
    if len(kek) not in (16, 24, 32) or len(data) % 8 or len(data) < 24:
        raise ValueError("AES key unwrap needs a 16/24/32-octet KEK and 8n (n >= 3) wrapped octets")
    try:
        return kernel("pgpcrypto").aes_key_unwrap(kek, data)
    except ValueError:
        raise InvalidUnwrap() from None


def kdf(params: EcdhParams, shared: bytes, fingerprint: bytes, param: bytes | None = None) -> bytes:
    """One-step KDF: ``Hash(00 00 00 01 || Z || param)`` truncated to the key-wrap key size.

    ``param`` is ``params.param_string(fingerprint)`` when the caller has it cached already.
    """
    hash_new = _KDF_HASHES.get(params.kdf_hash)
    size = _KEK_SIZES.get(params.kek_cipher)
    if hash_new is None or size is None:
        raise UnsupportedAlgorithm(f"ECDH KDF {params.kdf_hash!r} / key wrap {params.kek_cipher!r}")
    if param is None:
        param = params.param_string(fingerprint)
    digest = hash_new(b"\x00\x00\x00\x01" + shared + param).digest()
    if len(digest) < size:
        raise UnsupportedAlgorithm("ECDH KDF hash is shorter than the key-wrap key")
    return digest[:size]


def session_key_frame(key: bytes, algorithm: int | None) -> bytes:
    """``[algo] key checksum`` (algo only for v3 PKESK) PKCS#5-padded to a multiple of 8 octets."""
    frame = (bytes((algorithm,)) if algorithm is not None else b"") + key + checksum(key)
    pad = 8 - len(frame) % 8
    return frame + bytes((pad,)) * pad


def parse_session_key_frame(frame: bytes, with_algorithm: bool) -> tuple[int | None, bytes]:
    """Undo :func:`session_key_frame`: strip PKCS#5 padding, check the checksum."""
    if not frame:
        raise DecryptionFailed("session key frame is empty")
    pad = frame[-1]
    if not 1 <= pad <= min(len(frame), 8) or frame[-pad:] != bytes((pad,)) * pad:
        raise DecryptionFailed("bad session key padding")
    return split_checked_key(frame[:-pad], with_algorithm)


def split_checked_key(data: bytes, with_algorithm: bool) -> tuple[int | None, bytes]:
    """Split ``[algo] key checksum`` and verify the two-octet checksum."""
    algorithm = data[0] if with_algorithm and data else None
    key = data[1:-2] if with_algorithm else data[:-2]
    if len(key) < 5 or checksum(key) != data[-2:]:
        raise DecryptionFailed("session key checksum mismatch")
    return algorithm, key


def checksum(key: bytes) -> bytes:
    """Sum of the key octets modulo 65536, big-endian (RFC 9580 section 5.1)."""
    return (sum(key) & 0xFFFF).to_bytes(2, "big")


# --- legacy ECDH (algorithm 18) -----------------------------------------------------------------------


def encode_point(curve: Curve, public: EcPublicKey) -> bytes:
    """Wire form of a point: 0x40 || u for Curve25519, SEC1 uncompressed for NIST/brainpool."""
    if curve is Curve.CURVE25519_LEGACY:
        assert isinstance(public, x25519.X25519PublicKey)
        return b"\x40" + public.public_bytes_raw()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def decode_point(curve: Curve, point: bytes) -> EcPublicKey:
    """Parse a wire point for ``curve``; MalformedPacket when it is not a valid point."""
    try:
        if curve is Curve.CURVE25519_LEGACY:
            if len(point) != 33 or point[0] != 0x40:
                raise MalformedPacket("Curve25519 point must be 0x40 followed by 32 octets")
            return x25519_public(point[1:])
        ec_curve = _NIST_CURVES.get(curve)
        if ec_curve is None:
            raise UnsupportedAlgorithm(f"ECDH on curve {curve.name}")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec_curve, point)
    except ValueError as exc:
        raise MalformedPacket(f"invalid ECDH point: {exc}") from None


def cv25519_private_from_mpi(scalar: bytes) -> x25519.X25519PrivateKey:
    """A legacy Cv25519 secret is stored big-endian (reversed native order) as an MPI."""
    if len(scalar) > 32:
        raise MalformedPacket("Cv25519 secret scalar longer than 32 octets")
    return x25519.X25519PrivateKey.from_private_bytes(scalar.rjust(32, b"\x00")[::-1])


def _shared(private: EcPrivateKey, peer: EcPublicKey) -> bytes:
    if isinstance(private, x25519.X25519PrivateKey):
        assert isinstance(peer, x25519.X25519PublicKey)
        shared = private.exchange(peer)
    else:
        assert isinstance(peer, ec.EllipticCurvePublicKey)
        shared = private.exchange(ec.ECDH(), peer)  # the x-coordinate, field-sized
    return shared


def _nist_ephemeral(ec_curve: ec.EllipticCurve, random_bytes: RandomBytes) -> ec.EllipticCurvePrivateKey:
    """A NIST/brainpool ephemeral key; its scalar from ``random_bytes`` unless that is ``os.urandom``.

    The scalar is ``1 + (x mod (order - 1))`` for ``x`` of 64 bits more than the order (bias < 2**-64)."""
    if random_bytes is os.urandom:
        return ec.generate_private_key(ec_curve)
    order = _ORDERS[ec_curve.name]
    n = (order.bit_length() + 64 + 7) // 8
    scalar = 1 + int.from_bytes(random_bytes(n), "big") % (order - 1)
    return ec.derive_private_key(scalar, ec_curve)


_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
    "secp521r1": int(
        "01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16
    ),
    "brainpoolP256r1": 0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
    "brainpoolP384r1": int(
        "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7CF3AB6AF6B7FC3103B883202E9046565", 16
    ),
    "brainpoolP512r1": int(
        "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870553E5C414CA92619418661197FAC10471DB1D3"
        "81085DDADDB58796829CA90069",
        16,
    ),
}


def ecdh_wrap(
    params: EcdhParams,
    recipient: EcPublicKey,
    fingerprint: bytes,
    key: bytes,
    algorithm: int | None,
    random_bytes: RandomBytes = os.urandom,
) -> tuple[bytes, bytes]:
    """Wrap a session key for a legacy ECDH recipient: returns (ephemeral point, wrapped key).

    The ephemeral secret comes from ``random_bytes`` (see :data:`RandomBytes`)."""
    if params.curve is Curve.CURVE25519_LEGACY:
        assert isinstance(recipient, x25519.X25519PublicKey)
        eph_pub, shared = x25519_ephemeral(recipient.public_bytes_raw(), random_bytes)
        point = b"\x40" + eph_pub
    else:
        ec_curve = _NIST_CURVES.get(params.curve)
        if ec_curve is None:
            raise UnsupportedAlgorithm(f"ECDH on curve {params.curve.name}")
        eph = _nist_ephemeral(ec_curve, random_bytes)
        shared = _shared(eph, recipient)
        point = encode_point(params.curve, eph.public_key())
    kek = kdf(params, shared, fingerprint)
    return point, key_wrap(kek, session_key_frame(key, algorithm))


def ecdh_unwrap(
    params: EcdhParams,
    private: EcPrivateKey,
    fingerprint: bytes,
    point: bytes,
    wrapped: bytes,
    with_algorithm: bool,
    param: bytes | None = None,
) -> tuple[int | None, bytes]:
    """Recover ``(algorithm, session key)`` from a legacy ECDH PKESK; DecryptionFailed on any mismatch.

    ``param`` is the recipient's KDF parameter string when the caller has it cached."""
    try:
        peer = decode_point(params.curve, point)
    except MalformedPacket:  # the PKESK's ephemeral point: a failure like any other, no details
        raise DecryptionFailed("ECDH ephemeral point is invalid") from None
    try:
        kek = kdf(params, _shared(private, peer), fingerprint, param)
        frame = key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise DecryptionFailed("ECDH session key unwrap failed") from None
    return parse_session_key_frame(frame, with_algorithm)


# --- X25519 / X448 (algorithms 25, 26) ----------------------------------------------------------------

# algorithm -> (module, HKDF hash, info, KEK size)
_NATIVE = {
    PublicKeyAlgorithm.X25519: (x25519, "sha256", b"OpenPGP X25519", 16),
    PublicKeyAlgorithm.X448: (x448, "sha512", b"OpenPGP X448", 32),
}

NativePrivateKey = x25519.X25519PrivateKey | x448.X448PrivateKey
NativePublicKey = x25519.X25519PublicKey | x448.X448PublicKey


def _native_kek(algorithm: PublicKeyAlgorithm, eph: bytes, recipient: bytes, shared: bytes) -> bytes:
    """HKDF (RFC 5869, no salt) over ``eph || recipient || shared``; one expand block is enough."""
    _mod, name, info, size = _NATIVE[algorithm]
    prk = hmac.digest(bytes(hashlib.new(name).digest_size), eph + recipient + shared, name)
    return hmac.digest(prk, info + b"\x01", name)[:size]


def native_wrap(
    algorithm: PublicKeyAlgorithm,
    recipient: NativePublicKey,
    key: bytes,
    random_bytes: RandomBytes = os.urandom,
    recipient_raw: bytes | None = None,
) -> tuple[bytes, bytes]:
    """RFC 9580 section 5.1.6/5.1.7 encapsulation: returns (ephemeral public, wrapped session key).

    The ephemeral secret comes from ``random_bytes``; ``recipient_raw`` is the recipient's raw public
    key when the caller has it cached. X25519 runs on libsodium, X448 on `cryptography`."""
    if algorithm not in _NATIVE:
        raise UnsupportedAlgorithm(f"native KEM {algorithm!r}")
    if recipient_raw is None:
        recipient_raw = recipient.public_bytes_raw()
    if algorithm is PublicKeyAlgorithm.X25519:
        eph_pub, shared = x25519_ephemeral(recipient_raw, random_bytes)
    else:
        eph = x448.X448PrivateKey.from_private_bytes(random_bytes(56))
        eph_pub = eph.public_key().public_bytes_raw()
        shared = eph.exchange(recipient)  # type: ignore[arg-type]
    kek = _native_kek(algorithm, eph_pub, recipient_raw, shared)
    return eph_pub, key_wrap(kek, key)


def native_unwrap(
    algorithm: PublicKeyAlgorithm,
    private: NativePrivateKey,
    eph_pub: bytes,
    wrapped: bytes,
    own_public: bytes | None = None,
) -> bytes:
    """Recover the session key of an X25519/X448 PKESK; DecryptionFailed on any mismatch.

    ``own_public`` is the recipient's raw public key when the caller has it cached."""
    if algorithm not in _NATIVE:
        raise UnsupportedAlgorithm(f"native KEM {algorithm!r}")
    mod = _NATIVE[algorithm][0]
    try:
        if mod is x25519:
            peer: NativePublicKey = x25519_public(eph_pub)
        else:
            peer = x448.X448PublicKey.from_public_bytes(eph_pub)
        shared = private.exchange(peer)  # type: ignore[arg-type]
        if own_public is None:
            own_public = private.public_key().public_bytes_raw()
        kek = _native_kek(algorithm, eph_pub, own_public, shared)
        return key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError, TypeError):
        raise DecryptionFailed(f"{algorithm.name} session key unwrap failed") from None
