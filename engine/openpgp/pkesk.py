"""Public-Key Encrypted Session Key packets, tag 1 (RFC 9580 section 5.1), versions 3 and 6.

v3: ``03 || key ID (8) || algo || fields``; v6: ``06 || n || [key version || fingerprint] || algo ||
fields`` where ``n = 0`` marks an anonymous recipient (as does an all-zero key ID in v3).

Algorithm fields and the plaintext they protect:
- RSA: one MPI, PKCS#1 v1.5 over ``[cipher] key checksum`` (cipher octet only in v3).
- ECDH (legacy, 18): MPI point, one-octet length, AES-key-wrapped padded frame (see ``ecdh``).
- X25519/X448 (25/26): fixed ephemeral key, one-octet length, [cipher in clear, v3 only], wrapped key
  (no checksum, no padding).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine._native import kernel
from engine.errors import DecryptionFailed, UnsupportedAlgorithm
from engine.openpgp import ecdh
from engine.openpgp.constants import (
    NATIVE_KEY_SIZE,
    Curve,
    PacketTag,
    PublicKeyAlgorithm,
    SymmetricAlgorithm,
)
from engine.openpgp.ecdh import RandomBytes
from engine.openpgp.mpi import mpi_bytes, read_mpi_bytes
from engine.openpgp.packet import BodyReader, Packet, packet_header, write_packet

WILDCARD_KEY_ID = bytes(8)
_RSA = (PublicKeyAlgorithm.RSA, PublicKeyAlgorithm.RSA_ENCRYPT_ONLY)
_ELGAMAL = (PublicKeyAlgorithm.ELGAMAL, PublicKeyAlgorithm.ELGAMAL_ENCRYPT_OR_SIGN)
_NATIVE = (PublicKeyAlgorithm.X25519, PublicKeyAlgorithm.X448)


@dataclass(frozen=True, slots=True)
class SessionKey:
    """A decrypted session key. ``algorithm`` is None when it came from a v6 PKESK (SEIPD v2 names it)."""

    algorithm: SymmetricAlgorithm | None
    key: bytes = field(repr=False)

    def __repr__(self) -> str:  # never show key material
        name = self.algorithm.name if self.algorithm is not None else "unspecified"
        return f"SessionKey({name}, {len(self.key)} octets)"


@dataclass(frozen=True, slots=True)
class Pkesk:
    """A parsed PKESK. ``fields`` holds the algorithm-specific values:

    RSA ``(c,)``; ElGamal ``(a, b)``; ECDH ``(point, wrapped)``; X25519/X448 ``(ephemeral, cipher|None,
    wrapped)``. Big integers are kept as their big-endian bytes.
    """

    version: int
    algorithm: int
    key_id: bytes
    fields: tuple[Any, ...]
    fingerprint: bytes | None = None
    key_version: int | None = None
    offset: int = 0

    @property
    def anonymous(self) -> bool:
        """True when the recipient is hidden (wildcard key ID / empty v6 fingerprint)."""
        return self.key_id == WILDCARD_KEY_ID and self.fingerprint is None

    # --- read ---------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, packet: Packet) -> Pkesk:
        """Parse a tag 1 packet; MalformedPacket with the byte offset on bad structure."""
        r = BodyReader.of(packet, "PKESK")
        version = r.u8("version")
        fpr: bytes | None = None
        key_version: int | None = None
        if version == 3:
            key_id = r.take(8, "key ID")
        elif version == 6:
            n = r.u8("recipient length")
            if n:
                key_version = r.u8("key version")
                fpr = r.take(n - 1, "fingerprint")
                if (key_version, len(fpr)) not in ((4, 20), (6, 32)):
                    raise r.fail(f"fingerprint of {len(fpr)} octets for a v{key_version} key")
                key_id = fpr[-8:] if key_version == 4 else fpr[:8]
            else:
                key_id = WILDCARD_KEY_ID
        else:
            raise r.fail(f"unsupported PKESK version {version}", at=0)
        algorithm = r.u8("public-key algorithm")
        fields = _read_fields(r, algorithm, version)
        r.expect_end()
        return cls(version, algorithm, key_id, fields, fpr, key_version, packet.offset)

    # --- write --------------------------------------------------------------------------------------

    def prefix(self) -> bytes:
        """The body up to and including the algorithm octet (what precedes the algorithm fields)."""
        if self.version == 3:
            head = b"\x03" + self.key_id
        elif self.fingerprint is None:
            head = b"\x06\x00"
        else:
            head = bytes((6, len(self.fingerprint) + 1, self.key_version or 4)) + self.fingerprint
        return head + bytes((self.algorithm,))

    def serialize(self) -> bytes:
        """The whole packet, header included."""
        return write_packet(PacketTag.PKESK, self.prefix() + _write_fields(self))


def _read_fields(r: BodyReader, algorithm: int, version: int) -> tuple[Any, ...]:
    if algorithm in _RSA:
        return (read_mpi_bytes(r, "RSA ciphertext"),)
    if algorithm in _ELGAMAL:
        return (read_mpi_bytes(r, "ElGamal a"), read_mpi_bytes(r, "ElGamal b"))
    if algorithm == PublicKeyAlgorithm.ECDH:
        point = read_mpi_bytes(r, "ECDH ephemeral point")
        n = r.u8("wrapped key length")
        return (point, r.take(n, "wrapped session key"))
    if algorithm in _NATIVE:
        eph = r.take(NATIVE_KEY_SIZE[PublicKeyAlgorithm(algorithm)], "ephemeral key")
        n = r.u8("wrapped key length")
        cipher = None
        if version == 3:
            if n < 1:
                raise r.fail("X25519/X448 v3 PKESK lacks the cipher octet")
            cipher = r.u8("cipher")
            n -= 1
        return (eph, cipher, r.take(n, "wrapped session key"))
    raise UnsupportedAlgorithm(f"PKESK public-key algorithm {algorithm}")


def _write_fields(p: Pkesk) -> bytes:
    if p.algorithm in _RSA:
        return mpi_bytes(p.fields[0])
    if p.algorithm == PublicKeyAlgorithm.ECDH:
        point, wrapped = p.fields
        return mpi_bytes(point) + bytes((len(wrapped),)) + wrapped
    if p.algorithm in _NATIVE:
        eph, cipher, wrapped = p.fields
        clear = bytes((cipher,)) if p.version == 3 else b""
        return eph + bytes((len(clear) + len(wrapped),)) + clear + wrapped
    raise UnsupportedAlgorithm(f"writing a PKESK for public-key algorithm {p.algorithm}")


def parse_pkesk(packet: Packet) -> Pkesk:
    """Function form of :meth:`Pkesk.parse`."""
    return Pkesk.parse(packet)


# --- session key encryption ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """What encryption needs from a recipient's (sub)key: IDs, algorithm and the public key object.

    ``public`` is a `cryptography` public key; ``ecdh`` is set for algorithm 18. Resolve a certificate
    into a Recipient once (``engine.openpgp.message.resolve_recipients``) when encrypting many messages.
    """

    algorithm: PublicKeyAlgorithm
    fingerprint: bytes
    key_version: int
    public: Any
    ecdh: ecdh.EcdhParams | None = None
    seipd_v2: bool = False  # the certificate's Features advertise SEIPD v2
    # Constant parts of this recipient's PKESKs, filled on first use by pkesk_packet().
    _parts: dict[Any, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key_id(self) -> bytes:
        return self.fingerprint[-8:] if self.key_version == 4 else self.fingerprint[:8]


def rsa_pkcs1v15_encrypt(public: rsa.RSAPublicKey, frame: bytes, random_bytes: RandomBytes) -> bytes:
    """RSAES-PKCS1-v1_5 encryption (RFC 8017 section 7.2.1) with the padding string from ``random_bytes``.

    ``os.urandom`` goes to OpenSSL; any other source is done here with ``pow(m, e, n)`` so that the
    padding (nonzero octets drawn from ``random_bytes``, zeros skipped) is exactly what it gives."""
    if random_bytes is os.urandom:
        return public.encrypt(frame, padding.PKCS1v15())
    numbers = public.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    if len(frame) > k - 11:
        raise ValueError("session key frame too long for the RSA modulus")
    need = k - 3 - len(frame)
    ps = b""
    while len(ps) < need:
        ps += random_bytes(need - len(ps) + 8).replace(b"\x00", b"")
    em = b"\x00\x02" + ps[:need] + b"\x00" + frame
    return pow(int.from_bytes(em, "big"), numbers.e, numbers.n).to_bytes(k, "big")


def encrypt_session_key(
    recipient: Recipient,
    session_key: SessionKey,
    version: int = 3,
    anonymous: bool = False,
    random_bytes: RandomBytes = os.urandom,
) -> Pkesk:
    """A PKESK carrying ``session_key`` to ``recipient`` (v3 needs ``session_key.algorithm``).

    Every random value of the packet (ephemeral secrets, RSA padding) comes from ``random_bytes``."""
    alg = recipient.algorithm
    cipher = session_key.algorithm if version == 3 else None
    if version == 3 and cipher is None:
        raise UnsupportedAlgorithm("a v3 PKESK needs the session key's cipher")
    if alg in _RSA:
        frame = (
            (bytes((cipher,)) if cipher is not None else b"")
            + session_key.key
            + ecdh.checksum(session_key.key)
        )
        fields: tuple[Any, ...] = (rsa_pkcs1v15_encrypt(recipient.public, frame, random_bytes),)
    elif alg == PublicKeyAlgorithm.ECDH:
        if recipient.ecdh is None:
            raise UnsupportedAlgorithm("ECDH recipient without KDF parameters")
        fields = ecdh.ecdh_wrap(
            recipient.ecdh, recipient.public, recipient.fingerprint, session_key.key, cipher, random_bytes
        )
    elif alg in _NATIVE:
        if cipher is not None and not SymmetricAlgorithm(cipher).is_aes:
            raise UnsupportedAlgorithm("X25519/X448 recipients require an AES session key (RFC 9580 5.1.6)")
        eph, wrapped = ecdh.native_wrap(alg, recipient.public, session_key.key, random_bytes)
        fields = (eph, cipher, wrapped)
    else:
        raise UnsupportedAlgorithm(f"encrypting to public-key algorithm {alg!r}")
    if version == 3:
        return Pkesk(3, alg, WILDCARD_KEY_ID if anonymous else recipient.key_id, fields)
    if anonymous:
        return Pkesk(6, alg, WILDCARD_KEY_ID, fields)
    return Pkesk(6, alg, recipient.key_id, fields, recipient.fingerprint, recipient.key_version)


def _head(r: Recipient, version: int, anonymous: bool) -> bytes:
    """PKESK body up to and including the algorithm octet (cached per recipient)."""
    head = r._parts.get((version, anonymous))
    if head is None:
        if version == 3:
            p = Pkesk(3, r.algorithm, WILDCARD_KEY_ID if anonymous else r.key_id, ())
        elif anonymous:
            p = Pkesk(6, r.algorithm, WILDCARD_KEY_ID, ())
        else:
            p = Pkesk(6, r.algorithm, r.key_id, (), r.fingerprint, r.key_version)
        head = r._parts[(version, anonymous)] = p.prefix()
    return head


def _raw_public(recipient: Recipient) -> bytes:
    """The recipient's raw X25519 public key (cached)."""
    raw = recipient._parts.get("raw")
    if raw is None:
        raw = recipient._parts["raw"] = recipient.public.public_bytes_raw()
    return raw


def _kdf_param(recipient: Recipient) -> bytes:
    """The recipient's ECDH KDF parameter string (cached)."""
    param = recipient._parts.get("kdf")
    if param is None:
        param = recipient._parts["kdf"] = recipient.ecdh.param_string(recipient.fingerprint)  # type: ignore[union-attr]
    return param


def ecdh25519_batchable(recipient: Recipient) -> bool:
    """Whether :func:`ecdh25519_packets` serves ``recipient``: legacy ECDH on Curve25519 with a KDF hash
    and key-wrap cipher of :func:`ecdh.kdf` (the usual gpg ``cv25519`` subkey)."""
    params = recipient.ecdh
    return (
        recipient.algorithm == PublicKeyAlgorithm.ECDH
        and params is not None
        and params.curve is Curve.CURVE25519_LEGACY
        and params.kdf_hash in ecdh._KDF_HASHES
        and params.kek_cipher in ecdh._KEK_SIZES
    )


def ecdh25519_packets(
    recipient: Recipient,
    keys: Sequence[bytes],
    cipher: int | None,
    secrets: Sequence[bytes],
    version: int = 3,
    anonymous: bool = False,
) -> list[bytes]:
    """``pkesk_packet(recipient, SessionKey(cipher, key), version, anonymous, <secret>)`` for each session
    key of ``keys`` with its ephemeral X25519 secret (32 octets) of ``secrets``, in one kernel call
    (X25519, KDF, key wrap and framing in C) for a recipient :func:`ecdh25519_batchable` accepts.
    ``cipher`` is the session keys' algorithm (v3; None for v6)."""
    if version == 3 and cipher is None:
        raise UnsupportedAlgorithm("a v3 PKESK needs the session key's cipher")
    params = recipient.ecdh
    if params is None or not ecdh25519_batchable(recipient):
        raise UnsupportedAlgorithm("batched PKESKs are for legacy ECDH on Curve25519 recipients")
    return kernel("pgpcrypto").ecdh25519_pkesks(
        _raw_public(recipient), _kdf_param(recipient), _head(recipient, version, anonymous), params.kdf_hash,
        params.kek_cipher.key_size, cipher if version == 3 else None, keys, secrets,
    )  # fmt: skip


def pkesk_packet(
    recipient: Recipient,
    session_key: SessionKey,
    version: int = 3,
    anonymous: bool = False,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """``encrypt_session_key(...).serialize()``, quicker for Curve25519 ECDH and X25519 recipients.

    Their PKESK is built from cached constant parts (IDs, KDF parameter string, raw public key) around
    one libsodium X25519 key agreement and one key wrap: the per-message cost of bulk encryption.
    ``random_bytes`` supplies every random value of the packet (see :func:`encrypt_session_key`).
    """
    alg = recipient.algorithm
    params = recipient.ecdh
    cipher = session_key.algorithm if version == 3 else None
    if version == 3 and cipher is None:
        raise UnsupportedAlgorithm("a v3 PKESK needs the session key's cipher")
    if alg == PublicKeyAlgorithm.ECDH and params is not None and params.curve is Curve.CURVE25519_LEGACY:
        eph_pub, shared = ecdh.x25519_ephemeral(_raw_public(recipient), random_bytes)
        kek = ecdh.kdf(params, shared, recipient.fingerprint, _kdf_param(recipient))
        wrapped = ecdh.key_wrap(kek, ecdh.session_key_frame(session_key.key, cipher))
        tail = b"\x01\x07\x40" + eph_pub + bytes((len(wrapped),)) + wrapped
    elif alg == PublicKeyAlgorithm.X25519 and (cipher is None or SymmetricAlgorithm(cipher).is_aes):
        eph_pub, wrapped = ecdh.native_wrap(
            alg, recipient.public, session_key.key, random_bytes, _raw_public(recipient)
        )
        clear = b"" if cipher is None else bytes((cipher,))
        tail = eph_pub + bytes((len(clear) + len(wrapped),)) + clear + wrapped
    else:
        return encrypt_session_key(recipient, session_key, version, anonymous, random_bytes).serialize()
    body = _head(recipient, version, anonymous) + tail
    return packet_header(PacketTag.PKESK, len(body)) + body


def decrypt_session_key(
    pkesk: Pkesk,
    private: Any,
    fingerprint: bytes,
    params: ecdh.EcdhParams | None = None,
    *,
    param: bytes | None = None,
    own_public: bytes | None = None,
) -> SessionKey:
    """Recover the session key of ``pkesk`` with a `cryptography` private key.

    ``fingerprint`` is the recipient's (needed by the ECDH KDF). ``param`` (the ECDH KDF parameter
    string) and ``own_public`` (the raw X25519/X448 public key) may be passed in when cached by the
    caller. Any failure is DecryptionFailed, deliberately without details.
    """
    with_alg = pkesk.version == 3
    alg = pkesk.algorithm
    if alg in _RSA:
        if not isinstance(private, rsa.RSAPrivateKey):
            raise DecryptionFailed("key does not match the PKESK algorithm")
        size = (private.key_size + 7) // 8
        c = pkesk.fields[0]
        if len(c) > size:
            raise DecryptionFailed("RSA ciphertext larger than the modulus")
        try:
            frame = private.decrypt(c.rjust(size, b"\x00"), padding.PKCS1v15())
        except ValueError:
            raise DecryptionFailed("RSA session key decryption failed") from None
        cipher, key = ecdh.split_checked_key(frame, with_alg)
    elif alg == PublicKeyAlgorithm.ECDH:
        if params is None:
            raise DecryptionFailed("ECDH key without KDF parameters")
        point, wrapped = pkesk.fields
        cipher, key = ecdh.ecdh_unwrap(params, private, fingerprint, point, wrapped, with_alg, param)
    elif alg in _NATIVE:
        eph, cipher, wrapped = pkesk.fields
        key = ecdh.native_unwrap(PublicKeyAlgorithm(alg), private, eph, wrapped, own_public)
    else:
        raise UnsupportedAlgorithm(f"decrypting public-key algorithm {alg}")
    if cipher is None:
        return SessionKey(None, key)
    try:
        sym = SymmetricAlgorithm(cipher)
    except ValueError:
        raise DecryptionFailed("unknown session key cipher") from None
    if sym.key_size != len(key):
        raise DecryptionFailed("session key size does not match its cipher")
    return SessionKey(sym, key)
