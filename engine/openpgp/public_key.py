"""Public-key and public-subkey packets (tags 6 and 14; RFC 9580 section 5.5.2), v4 and v6.

Stable attributes of :class:`PublicKey` (used by the message layer):

- ``version`` (4 or 6), ``created`` (Unix time), ``algorithm`` (:class:`PublicKeyAlgorithm`),
  ``is_subkey`` (tag 14), ``body`` (packet body bytes exactly as read or written)
- ``material``: one of :class:`RSAMaterial`, :class:`DSAMaterial`, :class:`ElGamalMaterial`,
  :class:`ECDSAMaterial`, :class:`EdDSALegacyMaterial`, :class:`ECDHMaterial`, :class:`NativeMaterial`
  (X25519/X448/Ed25519/Ed448: ``public`` raw bytes), :class:`OpaqueMaterial`
- ``fingerprint`` (20 bytes v4 SHA-1, 32 bytes v6 SHA-256), ``key_id`` (8 bytes), ``fingerprint_hex``
- ECDH only (else ``None``): ``curve`` (:class:`Curve`), ``curve_oid``, ``point`` (0x40||u for Curve25519,
  SEC1 for NIST), ``kdf_hash`` (:class:`HashAlgorithm`), ``kdf_cipher`` (:class:`SymmetricAlgorithm`)
- ``to_crypto()``: the `cryptography` public key object; ``serialize()``: the whole packet
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from engine.errors import MalformedPacket, UnsupportedAlgorithm
from engine.openpgp.constants import (
    NATIVE_KEY_SIZE,
    Curve,
    HashAlgorithm,
    PacketTag,
    PublicKeyAlgorithm,
    SymmetricAlgorithm,
    enum_or_int,
)
from engine.openpgp.mpi import mpi, mpi_bytes, read_mpi, read_mpi_bytes, read_small_field
from engine.openpgp.packet import BodyReader, Packet, write_packet

_EC_CURVES: dict[Curve, type[ec.EllipticCurve]] = {
    Curve.NIST_P256: ec.SECP256R1,
    Curve.NIST_P384: ec.SECP384R1,
    Curve.NIST_P521: ec.SECP521R1,
    Curve.BRAINPOOL_P256: ec.BrainpoolP256R1,
    Curve.BRAINPOOL_P384: ec.BrainpoolP384R1,
    Curve.BRAINPOOL_P512: ec.BrainpoolP512R1,
}


@dataclass(frozen=True)
class RSAMaterial:
    n: int
    e: int


@dataclass(frozen=True)
class DSAMaterial:
    p: int
    q: int
    g: int
    y: int


@dataclass(frozen=True)
class ElGamalMaterial:
    p: int
    g: int
    y: int


@dataclass(frozen=True)
class ECDSAMaterial:
    curve: Curve
    point: bytes


@dataclass(frozen=True)
class EdDSALegacyMaterial:
    curve: Curve
    point: bytes  # 0x40 || native public key


@dataclass(frozen=True)
class ECDHMaterial:
    curve: Curve
    point: bytes
    kdf_hash: HashAlgorithm
    kdf_cipher: SymmetricAlgorithm


@dataclass(frozen=True)
class NativeMaterial:
    public: bytes  # X25519 / X448 / Ed25519 / Ed448 raw public key


@dataclass(frozen=True)
class OpaqueMaterial:
    raw: bytes  # unknown algorithm (v6 only: the length is known)


Material = (
    RSAMaterial
    | DSAMaterial
    | ElGamalMaterial
    | ECDSAMaterial
    | EdDSALegacyMaterial
    | ECDHMaterial
    | NativeMaterial
    | OpaqueMaterial
)
A = PublicKeyAlgorithm


def _curve(r: BodyReader) -> Curve:
    at = r.pos
    try:
        return Curve.from_oid(read_small_field(r, "curve OID"))
    except UnsupportedAlgorithm as e:
        raise UnsupportedAlgorithm(f"{e} at byte {r.base + at}") from None


def _read_material(r: BodyReader, algo: int) -> Material:
    """Parse the algorithm-specific public fields (RFC 9580 section 5.5.5)."""
    if algo in (A.RSA, A.RSA_ENCRYPT_ONLY, A.RSA_SIGN_ONLY):
        return RSAMaterial(read_mpi(r, "RSA n"), read_mpi(r, "RSA e"))
    if algo == A.DSA:
        return DSAMaterial(*(read_mpi(r, f"DSA {n}") for n in "pqgy"))
    if algo in (A.ELGAMAL, A.ELGAMAL_ENCRYPT_OR_SIGN):
        return ElGamalMaterial(*(read_mpi(r, f"ElGamal {n}") for n in "pgy"))
    if algo == A.ECDSA:
        return ECDSAMaterial(_curve(r), read_mpi_bytes(r, "EC point"))
    if algo == A.EDDSA_LEGACY:
        return EdDSALegacyMaterial(_curve(r), read_mpi_bytes(r, "EdDSA point"))
    if algo == A.ECDH:
        curve = _curve(r)
        point = read_mpi_bytes(r, "ECDH point")
        at = r.pos
        kdf = read_small_field(r, "ECDH KDF parameters")
        if len(kdf) < 3 or kdf[0] != 1:
            raise r.fail("unsupported ECDH KDF parameters", at=at)
        return ECDHMaterial(curve, point, _enum(HashAlgorithm, kdf[1]), _enum(SymmetricAlgorithm, kdf[2]))
    if algo in NATIVE_KEY_SIZE:
        return NativeMaterial(r.take(NATIVE_KEY_SIZE[A(algo)], f"{A(algo).name} public key"))
    raise UnsupportedAlgorithm(f"public-key algorithm {algo} at byte {r.base + r.pos}")


def _enum(enum: Any, value: int) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise UnsupportedAlgorithm(f"{enum.__name__} {value}") from None


def encode_material(m: Material) -> bytes:
    """Serialize public key material (inverse of parsing)."""
    if isinstance(m, RSAMaterial):
        return mpi(m.n) + mpi(m.e)
    if isinstance(m, DSAMaterial):
        return mpi(m.p) + mpi(m.q) + mpi(m.g) + mpi(m.y)
    if isinstance(m, ElGamalMaterial):
        return mpi(m.p) + mpi(m.g) + mpi(m.y)
    if isinstance(m, ECDSAMaterial | EdDSALegacyMaterial):
        return bytes((len(m.curve.oid),)) + m.curve.oid + mpi_bytes(m.point)
    if isinstance(m, ECDHMaterial):
        oid = m.curve.oid
        return bytes((len(oid),)) + oid + mpi_bytes(m.point) + bytes((3, 1, m.kdf_hash, m.kdf_cipher))
    if isinstance(m, NativeMaterial):
        return m.public
    return m.raw


@dataclass(frozen=True, eq=False)
class PublicKey:
    """A parsed (or built) public key or subkey packet."""

    version: int
    created: int
    algorithm: PublicKeyAlgorithm
    material: Material
    is_subkey: bool = False
    body: bytes = field(default=b"", repr=False)

    @classmethod
    def build(
        cls,
        algorithm: PublicKeyAlgorithm,
        material: Material,
        created: int,
        version: int = 4,
        is_subkey: bool = False,
    ) -> PublicKey:
        """A new key packet from its fields."""
        raw = encode_material(material)
        head = bytes((version,)) + created.to_bytes(4, "big") + bytes((algorithm,))
        if version == 6:
            head += len(raw).to_bytes(4, "big")
        return cls(version, created, algorithm, material, is_subkey, head + raw)

    @classmethod
    def parse(cls, packet: Packet) -> PublicKey:
        """Parse a tag 6 or 14 packet body; MalformedPacket / UnsupportedAlgorithm otherwise."""
        r = BodyReader.of(packet, "public key")
        key = cls.read(r, packet.tag in (PacketTag.PUBLIC_SUBKEY, PacketTag.SECRET_SUBKEY))
        r.expect_end()
        return key

    @classmethod
    def read(cls, r: BodyReader, is_subkey: bool) -> PublicKey:
        """Read the public part from ``r`` (also the head of a secret key packet)."""
        start = r.pos
        version = r.u8("version")
        if version not in (4, 6):
            raise UnsupportedAlgorithm(f"key packet version {version} at byte {r.base + start}")
        created = r.u32("creation time")
        algo = r.u8("algorithm")
        if version == 6:
            size = r.u32("key material length")
            sub = BodyReader(r.take(size, "key material"), r.base + r.pos - size, r.source, r.what)
            material = (
                _read_material(sub, algo)
                if algo in PublicKeyAlgorithm._value2member_map_
                else OpaqueMaterial(bytes(sub.data))
            )
            sub.expect_end()
        else:
            material = _read_material(r, algo)
        body = bytes(r.data[start : r.pos])
        return cls(version, created, enum_or_int(PublicKeyAlgorithm, algo), material, is_subkey, body)  # type: ignore[arg-type]

    @property
    def tag(self) -> PacketTag:
        return PacketTag.PUBLIC_SUBKEY if self.is_subkey else PacketTag.PUBLIC_KEY

    def serialize(self) -> bytes:
        """The whole public (sub)key packet."""
        return write_packet(self.tag, self.body)

    def as_primary(self) -> PublicKey:
        return PublicKey(self.version, self.created, self.algorithm, self.material, False, self.body)

    def as_subkey(self) -> PublicKey:
        return PublicKey(self.version, self.created, self.algorithm, self.material, True, self.body)

    def hashed_form(self) -> bytes:
        """The key as hashed for fingerprints and signatures (RFC 9580 sections 5.5.4, 5.2.4)."""
        if self.version == 6:
            return b"\x9b" + len(self.body).to_bytes(4, "big") + self.body
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body

    @cached_property
    def fingerprint(self) -> bytes:
        h = hashlib.sha256 if self.version == 6 else hashlib.sha1
        return h(self.hashed_form()).digest()

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex().upper()

    @property
    def key_id(self) -> bytes:
        return self.fingerprint[:8] if self.version == 6 else self.fingerprint[-8:]

    # ECDH conveniences (None for other algorithms).
    @property
    def curve(self) -> Curve | None:
        return getattr(self.material, "curve", None)

    @property
    def curve_oid(self) -> bytes | None:
        c = self.curve
        return c.oid if c is not None else None

    @property
    def point(self) -> bytes | None:
        return getattr(self.material, "point", None)

    @property
    def kdf_hash(self) -> HashAlgorithm | None:
        return getattr(self.material, "kdf_hash", None)

    @property
    def kdf_cipher(self) -> SymmetricAlgorithm | None:
        return getattr(self.material, "kdf_cipher", None)

    @property
    def bit_length(self) -> int:
        m = self.material
        if isinstance(m, RSAMaterial):
            return m.n.bit_length()
        if isinstance(m, DSAMaterial | ElGamalMaterial):
            return m.p.bit_length()
        if isinstance(m, NativeMaterial):
            return {A.X448: 448, A.ED448: 448}.get(self.algorithm, 255)  # type: ignore[call-overload]
        c = self.curve
        return {Curve.NIST_P256: 256, Curve.NIST_P384: 384, Curve.NIST_P521: 521}.get(c, 255) if c else 0  # type: ignore[arg-type]

    def to_crypto(self) -> Any:
        """The `cryptography` public key; UnsupportedAlgorithm for ElGamal and unknown curves."""
        m = self.material
        try:
            if isinstance(m, RSAMaterial):
                return rsa.RSAPublicNumbers(m.e, m.n).public_key()
            if isinstance(m, DSAMaterial):
                return dsa.DSAPublicNumbers(m.y, dsa.DSAParameterNumbers(m.p, m.q, m.g)).public_key()
            if isinstance(m, NativeMaterial):
                return _NATIVE_PUBLIC[self.algorithm].from_public_bytes(m.public)
            if isinstance(m, EdDSALegacyMaterial | ECDHMaterial) and m.curve in _LEGACY_25519:
                if len(m.point) != 33 or m.point[0] != 0x40:
                    raise MalformedPacket(f"{m.curve.name} point is not 0x40 || 32 octets")
                return _LEGACY_25519[m.curve].from_public_bytes(m.point[1:])
            if isinstance(m, ECDSAMaterial | ECDHMaterial) and m.curve in _EC_CURVES:
                return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[m.curve](), m.point)
        except ValueError as e:
            raise MalformedPacket(f"invalid {self.algorithm!r} public key: {e}") from None
        raise UnsupportedAlgorithm(f"no cryptography key for {self.algorithm!r} {self.curve!r}")


_NATIVE_PUBLIC: dict[Any, Any] = {
    A.X25519: x25519.X25519PublicKey,
    A.X448: x448.X448PublicKey,
    A.ED25519: ed25519.Ed25519PublicKey,
    A.ED448: ed448.Ed448PublicKey,
}
_LEGACY_25519: dict[Curve, Any] = {
    Curve.ED25519_LEGACY: ed25519.Ed25519PublicKey,
    Curve.CURVE25519_LEGACY: x25519.X25519PublicKey,
}
