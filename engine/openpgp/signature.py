"""Signature packets (tag 2; RFC 9580 section 5.2): v3 (read), v4 and v6, subpackets, hashing, verify, sign.

Which bytes a signature covers is chosen by the caller with :func:`key_data`, :func:`certification_data`
and :func:`binding_data` (section 5.2.4); :meth:`Signature.verify` adds the salt (v6) and the trailer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from engine.errors import MalformedPacket, SignatureError, UnsupportedAlgorithm
from engine.openpgp.constants import (
    NATIVE_SIGNATURE_SIZE,
    V6_SALT_SIZE,
    HashAlgorithm,
    PacketTag,
    PublicKeyAlgorithm,
    SignatureSubpacketType,
    SignatureType,
    enum_or_int,
)
from engine.openpgp.mpi import mpi, read_mpi_bytes
from engine.openpgp.packet import BodyReader, Packet, encode_length, write_packet
from engine.openpgp.public_key import PublicKey

A = PublicKeyAlgorithm
SP = SignatureSubpacketType


@dataclass(frozen=True)
class Subpacket:
    """One signature subpacket; ``data`` excludes the type octet."""

    type: int
    data: bytes
    critical: bool = False

    def serialize(self) -> bytes:
        return (
            encode_length(len(self.data) + 1)
            + bytes((self.type | (0x80 if self.critical else 0),))
            + self.data
        )


def parse_subpackets(r: BodyReader, size: int) -> tuple[list[Subpacket], bytes]:
    """Read a subpacket area of ``size`` bytes: (subpackets, raw area)."""
    start = r.pos
    raw = r.take(size, "subpacket area")
    sub = BodyReader(raw, r.base + start, r.source, "signature subpacket")
    out = []
    while sub.remaining:
        at = sub.pos
        o1 = sub.u8("subpacket length")
        if o1 < 192:
            length = o1
        elif o1 < 255:
            length = ((o1 - 192) << 8) + sub.u8("subpacket length") + 192
        else:
            length = sub.u32("subpacket length")
        if length == 0:
            raise sub.fail("subpacket of length 0", at=at)
        body = sub.take(length, "subpacket")
        out.append(Subpacket(body[0] & 0x7F, body[1:], bool(body[0] & 0x80)))
    return out, raw


def _area(subpackets: list[Subpacket]) -> bytes:
    return b"".join(s.serialize() for s in subpackets)


@dataclass(eq=False)
class Signature:
    """A signature packet. ``material`` is the list of signature MPIs / native fields, as bytes."""

    version: int
    sig_type: int
    algorithm: int
    hash_algorithm: int
    hashed: list[Subpacket] = field(default_factory=list)
    unhashed: list[Subpacket] = field(default_factory=list)
    left16: bytes = b"\x00\x00"
    material: list[bytes] = field(default_factory=list)
    salt: bytes = b""
    hashed_area: bytes = b""
    v3_created: int = 0
    v3_issuer: bytes = b""

    # -- parse / serialize ---------------------------------------------------------------------
    @classmethod
    def parse(cls, packet: Packet) -> Signature:
        return cls.read(BodyReader.of(packet, "signature"))

    @classmethod
    def read(cls, r: BodyReader) -> Signature:
        start = r.pos
        version = r.u8("version")
        if version == 3:
            return cls._read_v3(r)
        if version not in (4, 6):
            raise UnsupportedAlgorithm(f"signature version {version} at byte {r.base + start}")
        sig_type, algo, halg = r.u8("type"), r.u8("algorithm"), r.u8("hash algorithm")
        size = r.u32 if version == 6 else r.u16
        hashed, hashed_area = parse_subpackets(r, size("hashed area length"))
        unhashed, _ = parse_subpackets(r, size("unhashed area length"))
        left16 = r.take(2, "hash prefix")
        salt = r.take(r.u8("salt length"), "salt") if version == 6 else b""
        sig = cls(version, sig_type, algo, halg, hashed, unhashed, left16, [], salt, hashed_area)
        sig.material = _read_sig_material(r, algo)
        r.expect_end()
        return sig

    @classmethod
    def _read_v3(cls, r: BodyReader) -> Signature:
        if r.u8("v3 hashed length") != 5:
            raise r.fail("v3 signature hashed length must be 5", at=r.pos - 1)
        sig_type, created, issuer = r.u8("type"), r.u32("creation time"), r.take(8, "issuer")
        algo, halg = r.u8("algorithm"), r.u8("hash algorithm")
        sig = cls(
            3, sig_type, algo, halg, left16=r.take(2, "hash prefix"), v3_created=created, v3_issuer=issuer
        )
        sig.material = _read_sig_material(r, algo)
        r.expect_end()
        return sig

    def body(self) -> bytes:
        if self.version == 3:
            head = bytes((3, 5, self.sig_type)) + self.v3_created.to_bytes(4, "big") + self.v3_issuer
            return head + bytes((self.algorithm, self.hash_algorithm)) + self.left16 + self._material_bytes()
        width = 4 if self.version == 6 else 2
        unhashed = _area(self.unhashed)
        out = self._hashed_part() + len(unhashed).to_bytes(width, "big") + unhashed + self.left16
        if self.version == 6:
            out += bytes((len(self.salt),)) + self.salt
        return out + self._material_bytes()

    def serialize(self) -> bytes:
        return write_packet(PacketTag.SIGNATURE, self.body())

    def _material_bytes(self) -> bytes:
        if self.algorithm in NATIVE_SIGNATURE_SIZE:
            return b"".join(self.material)
        if self.algorithm in _MPI_COUNT:
            return b"".join(mpi(int.from_bytes(m, "big")) for m in self.material)
        return b"".join(self.material)

    def _hashed_part(self) -> bytes:
        area = self.hashed_area or _area(self.hashed)
        width = 4 if self.version == 6 else 2
        head = bytes((self.version, self.sig_type, self.algorithm, self.hash_algorithm))
        return head + len(area).to_bytes(width, "big") + area

    # -- hashing -----------------------------------------------------------------------------
    def digest(self, data: bytes) -> bytes:
        """The hash this signature signs over ``data`` (section 5.2.4)."""
        try:
            h = hashes.Hash(HashAlgorithm(self.hash_algorithm).crypto_hash())
        except ValueError:
            raise UnsupportedAlgorithm(f"hash algorithm {self.hash_algorithm}") from None
        if self.version == 6:
            h.update(self.salt)
        h.update(data)
        if self.version == 3:
            h.update(bytes((self.sig_type,)) + self.v3_created.to_bytes(4, "big"))
        else:
            part = self._hashed_part()
            h.update(part + bytes((self.version, 0xFF)) + (len(part) & 0xFFFFFFFF).to_bytes(4, "big"))
        return h.finalize()

    def verify(self, key: PublicKey, data: bytes) -> None:
        """Raise SignatureError unless this signature by ``key`` over ``data`` is valid."""
        if self.algorithm != key.algorithm:
            raise SignatureError("signature algorithm does not match the key")
        if self.version == 6 and len(self.salt) != V6_SALT_SIZE.get(self.hash_algorithm, -1):  # type: ignore[call-overload]
            raise SignatureError("v6 signature salt size does not match its hash")
        digest = self.digest(data)
        if digest[:2] != self.left16:
            raise SignatureError("hash prefix mismatch")
        try:
            _verify_raw(self, key, digest)
        except (InvalidSignature, ValueError) as e:
            raise SignatureError(f"bad {A(self.algorithm).name} signature") from e

    def is_valid(self, key: PublicKey, data: bytes) -> bool:
        try:
            self.verify(key, data)
        except (SignatureError, UnsupportedAlgorithm, MalformedPacket):
            return False
        return True

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        signer: PublicKey,
        private: Any,
        sig_type: int,
        data: bytes,
        hashed: list[Subpacket],
        unhashed: list[Subpacket] | None = None,
        hash_algorithm: HashAlgorithm = HashAlgorithm.SHA512,
    ) -> Signature:
        """Sign ``data`` with ``private`` (a `cryptography` private key matching ``signer``)."""
        version = 6 if signer.version == 6 else 4
        salt = os.urandom(V6_SALT_SIZE[hash_algorithm]) if version == 6 else b""
        sig = cls(
            version, sig_type, signer.algorithm, hash_algorithm, list(hashed), list(unhashed or []), salt=salt
        )
        digest = sig.digest(data)
        sig.left16 = digest[:2]
        sig.material = _sign_raw(signer, private, hash_algorithm, digest)
        return sig

    # -- subpacket accessors (hashed area only unless said) ----------------------------------
    def _find(self, t: int, unhashed_too: bool = False) -> bytes | None:
        for s in self.hashed:
            if s.type == t:
                return s.data
        if unhashed_too:
            for s in self.unhashed:
                if s.type == t:
                    return s.data
        return None

    def _u32(self, t: int) -> int | None:
        d = self._find(t)
        return int.from_bytes(d, "big") if d is not None and len(d) == 4 else None

    @property
    def type(self) -> SignatureType | int:
        return enum_or_int(SignatureType, self.sig_type)  # type: ignore[return-value]

    @property
    def created(self) -> int:
        return self.v3_created if self.version == 3 else self._u32(SP.CREATION_TIME) or 0

    @property
    def expiration(self) -> int | None:
        """Seconds after creation when the signature expires (None or 0: never)."""
        return self._u32(SP.EXPIRATION_TIME)

    @property
    def key_expiration(self) -> int | None:
        """Seconds after key creation when the key expires (None or 0: never)."""
        return self._u32(SP.KEY_EXPIRATION_TIME)

    @property
    def key_flags(self) -> int | None:
        d = self._find(SP.KEY_FLAGS)
        return d[0] if d else (0 if d is not None else None)

    @property
    def features(self) -> int | None:
        d = self._find(SP.FEATURES)
        return d[0] if d else (0 if d is not None else None)

    @property
    def preferred_symmetric(self) -> list[int]:
        return list(self._find(SP.PREFERRED_SYMMETRIC) or b"")

    @property
    def preferred_hash(self) -> list[int]:
        return list(self._find(SP.PREFERRED_HASH) or b"")

    @property
    def preferred_compression(self) -> list[int]:
        return list(self._find(SP.PREFERRED_COMPRESSION) or b"")

    @property
    def preferred_aead(self) -> list[tuple[int, int]]:
        d = self._find(SP.PREFERRED_AEAD_CIPHERSUITES) or b""
        return [(d[i], d[i + 1]) for i in range(0, len(d) - 1, 2)]

    @property
    def primary_uid(self) -> bool:
        return bool((self._find(SP.PRIMARY_USER_ID) or b"\x00")[0])

    @property
    def revocation_reason(self) -> tuple[int, bytes] | None:
        d = self._find(SP.REVOCATION_REASON)
        return (d[0], d[1:]) if d else None

    @property
    def issuer_fingerprint(self) -> bytes | None:
        d = self._find(SP.ISSUER_FINGERPRINT, unhashed_too=True)
        return d[1:] if d and len(d) > 1 else None

    @property
    def issuer_key_id(self) -> bytes | None:
        if self.version == 3:
            return self.v3_issuer
        d = self._find(SP.ISSUER_KEY_ID, unhashed_too=True)
        if d is not None and len(d) == 8:
            return d
        fp = self.issuer_fingerprint
        if fp is None:
            return None
        return fp[:8] if len(fp) == 32 else fp[-8:]

    def embedded_signatures(self) -> list[Signature]:
        """Embedded signatures (hashed or unhashed); malformed ones are skipped."""
        out = []
        for s in [*self.hashed, *self.unhashed]:
            if s.type == SP.EMBEDDED_SIGNATURE:
                try:
                    out.append(Signature.read(BodyReader(s.data, what="embedded signature")))
                except (MalformedPacket, UnsupportedAlgorithm):
                    continue
        return out

    def expired_at(self, at: int) -> bool:
        exp = self.expiration
        return bool(exp) and at >= self.created + exp  # type: ignore[operator]

    def has_unknown_critical(self) -> bool:
        """True when a hashed critical subpacket is one we do not understand (section 5.2.3.7)."""
        return any(s.critical and s.type not in _KNOWN_SUBPACKETS for s in self.hashed)


_KNOWN_SUBPACKETS = frozenset(int(t) for t in SP) - {SP.REGEX, SP.NOTATION}
_MPI_COUNT = {A.RSA: 1, A.RSA_SIGN_ONLY: 1, A.DSA: 2, A.ECDSA: 2, A.EDDSA_LEGACY: 2}


def _read_sig_material(r: BodyReader, algo: int) -> list[bytes]:
    if algo in NATIVE_SIGNATURE_SIZE:
        return [r.take(NATIVE_SIGNATURE_SIZE[A(algo)], "native signature")]
    count = _MPI_COUNT.get(algo)  # type: ignore[call-overload]
    if count is None:
        return [r.rest()]
    return [read_mpi_bytes(r, "signature MPI") for _ in range(count)]


def _verify_raw(sig: Signature, key: PublicKey, digest: bytes) -> None:
    pub = key.to_crypto()
    halg = Prehashed(HashAlgorithm(sig.hash_algorithm).crypto_hash())
    m = sig.material
    if isinstance(pub, rsa.RSAPublicKey):
        size = (pub.key_size + 7) // 8
        pub.verify(m[0].rjust(size, b"\x00"), digest, padding.PKCS1v15(), halg)
    elif isinstance(pub, dsa.DSAPublicKey):
        pub.verify(_dss(m), digest, halg)  # OpenSSL truncates the digest to the size of q
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(_dss(m), digest, ec.ECDSA(halg))
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        raw = m[0] if sig.algorithm == A.ED25519 else m[0].rjust(32, b"\x00") + m[1].rjust(32, b"\x00")
        pub.verify(raw, digest)
    elif isinstance(pub, ed448.Ed448PublicKey):
        pub.verify(m[0], digest)
    else:
        raise UnsupportedAlgorithm(f"cannot verify with {key.algorithm!r}")


def _dss(m: list[bytes]) -> bytes:
    if len(m) != 2:
        raise MalformedPacket("DSA/ECDSA signature needs two MPIs")
    return encode_dss_signature(int.from_bytes(m[0], "big"), int.from_bytes(m[1], "big"))


def _sign_raw(signer: PublicKey, private: Any, halg: HashAlgorithm, digest: bytes) -> list[bytes]:
    pre = Prehashed(halg.crypto_hash())
    if isinstance(private, rsa.RSAPrivateKey):
        return [private.sign(digest, padding.PKCS1v15(), pre)]
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(pre)))
        return [_int_bytes(r), _int_bytes(s)]
    if isinstance(private, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raw = private.sign(digest)
        if signer.algorithm == A.EDDSA_LEGACY:
            return [raw[:32], raw[32:]]
        return [raw]
    raise UnsupportedAlgorithm(f"cannot sign with {type(private).__name__}")


def _int_bytes(v: int) -> bytes:
    return v.to_bytes((v.bit_length() + 7) // 8, "big")


# -- what a signature covers (section 5.2.4) ---------------------------------------------------
def key_data(key: PublicKey) -> bytes:
    """Direct-key signatures and key revocations."""
    return key.hashed_form()


def certification_data(primary: PublicKey, uid: bytes, attribute: bool = False, version: int = 4) -> bytes:
    """Certifications and certification revocations over a User ID (or User Attribute) body."""
    if version == 3:
        return primary.hashed_form() + uid
    return primary.hashed_form() + (b"\xd1" if attribute else b"\xb4") + len(uid).to_bytes(4, "big") + uid


def binding_data(primary: PublicKey, subkey: PublicKey) -> bytes:
    """Subkey bindings, primary key bindings and subkey revocations."""
    return primary.hashed_form() + subkey.hashed_form()
