"""OpenPGP numeric registries (RFC 9580 section 9, RFC 4880, RFC 6637) as IntEnums and small tables."""

from __future__ import annotations

from enum import IntEnum, IntFlag

from cryptography.hazmat.primitives import hashes

from engine.errors import UnsupportedAlgorithm


class PacketTag(IntEnum):
    """Packet type IDs (RFC 9580 section 5)."""

    PKESK = 1
    SIGNATURE = 2
    SKESK = 3
    ONE_PASS_SIGNATURE = 4
    SECRET_KEY = 5
    PUBLIC_KEY = 6
    SECRET_SUBKEY = 7
    COMPRESSED = 8
    SED = 9
    MARKER = 10
    LITERAL = 11
    TRUST = 12
    USER_ID = 13
    PUBLIC_SUBKEY = 14
    USER_ATTRIBUTE = 17
    SEIPD = 18
    MDC = 19
    OCB_ENCRYPTED = 20  # LibrePGP; never written
    PADDING = 21


class PublicKeyAlgorithm(IntEnum):
    """Public-key algorithm IDs (RFC 9580 section 9.1)."""

    RSA = 1
    RSA_ENCRYPT_ONLY = 2
    RSA_SIGN_ONLY = 3
    ELGAMAL = 16
    DSA = 17
    ECDH = 18
    ECDSA = 19
    ELGAMAL_ENCRYPT_OR_SIGN = 20
    EDDSA_LEGACY = 22
    X25519 = 25
    X448 = 26
    ED25519 = 27
    ED448 = 28

    @property
    def can_sign(self) -> bool:
        return self in _SIGNING_ALGOS

    @property
    def can_encrypt(self) -> bool:
        return self in _ENCRYPTION_ALGOS


_SIGNING_ALGOS = frozenset(
    {
        PublicKeyAlgorithm.RSA,
        PublicKeyAlgorithm.RSA_SIGN_ONLY,
        PublicKeyAlgorithm.DSA,
        PublicKeyAlgorithm.ECDSA,
        PublicKeyAlgorithm.EDDSA_LEGACY,
        PublicKeyAlgorithm.ED25519,
        PublicKeyAlgorithm.ED448,
    }
)
_ENCRYPTION_ALGOS = frozenset(
    {
        PublicKeyAlgorithm.RSA,
        PublicKeyAlgorithm.RSA_ENCRYPT_ONLY,
        PublicKeyAlgorithm.ELGAMAL,
        PublicKeyAlgorithm.ELGAMAL_ENCRYPT_OR_SIGN,
        PublicKeyAlgorithm.ECDH,
        PublicKeyAlgorithm.X25519,
        PublicKeyAlgorithm.X448,
    }
)


class SymmetricAlgorithm(IntEnum):
    """Symmetric cipher IDs (RFC 9580 section 9.3) with key and block sizes in bytes."""

    PLAINTEXT = 0
    IDEA = 1
    TRIPLEDES = 2
    CAST5 = 3
    BLOWFISH = 4
    AES128 = 7
    AES192 = 8
    AES256 = 9
    TWOFISH = 10
    CAMELLIA128 = 11
    CAMELLIA192 = 12
    CAMELLIA256 = 13

    @property
    def key_size(self) -> int:
        return _SYM_SIZES[self][0]

    @property
    def block_size(self) -> int:
        return _SYM_SIZES[self][1]

    @property
    def is_aes(self) -> bool:
        return self in (SymmetricAlgorithm.AES128, SymmetricAlgorithm.AES192, SymmetricAlgorithm.AES256)


_SYM_SIZES: dict[SymmetricAlgorithm, tuple[int, int]] = {
    SymmetricAlgorithm.PLAINTEXT: (0, 0),
    SymmetricAlgorithm.IDEA: (16, 8),
    SymmetricAlgorithm.TRIPLEDES: (24, 8),
    SymmetricAlgorithm.CAST5: (16, 8),
    SymmetricAlgorithm.BLOWFISH: (16, 8),
    SymmetricAlgorithm.AES128: (16, 16),
    SymmetricAlgorithm.AES192: (24, 16),
    SymmetricAlgorithm.AES256: (32, 16),
    SymmetricAlgorithm.TWOFISH: (32, 16),
    SymmetricAlgorithm.CAMELLIA128: (16, 16),
    SymmetricAlgorithm.CAMELLIA192: (24, 16),
    SymmetricAlgorithm.CAMELLIA256: (32, 16),
}


class HashAlgorithm(IntEnum):
    """Hash algorithm IDs (RFC 9580 section 9.5)."""

    MD5 = 1
    SHA1 = 2
    RIPEMD160 = 3
    SHA256 = 8
    SHA384 = 9
    SHA512 = 10
    SHA224 = 11
    SHA3_256 = 12
    SHA3_512 = 14

    def crypto_hash(self) -> hashes.HashAlgorithm:
        """A fresh `cryptography` hash object; UnsupportedAlgorithm for RIPEMD-160 and unknowns."""
        factory = _HASHES.get(self)
        if factory is None:
            raise UnsupportedAlgorithm(f"hash algorithm {self.name} is not supported")
        return factory()

    @property
    def digest_size(self) -> int:
        return self.crypto_hash().digest_size


_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.MD5: hashes.MD5,
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
    HashAlgorithm.SHA224: hashes.SHA224,
    HashAlgorithm.SHA3_256: hashes.SHA3_256,
    HashAlgorithm.SHA3_512: hashes.SHA3_512,
}

# The ASN.1 DigestInfo prefixes for RSA PKCS#1 v1.5 (RFC 9580 section 5.2.2) are supplied by
# `cryptography` itself; only the RFC salt sizes for v6 signatures are needed here (section 9.5).
V6_SALT_SIZE: dict[HashAlgorithm, int] = {
    HashAlgorithm.SHA256: 16,
    HashAlgorithm.SHA384: 24,
    HashAlgorithm.SHA512: 32,
    HashAlgorithm.SHA224: 16,
    HashAlgorithm.SHA3_256: 16,
    HashAlgorithm.SHA3_512: 32,
}


class AEADAlgorithm(IntEnum):
    """AEAD mode IDs (RFC 9580 section 9.6) with nonce and tag sizes."""

    EAX = 1
    OCB = 2
    GCM = 3

    @property
    def nonce_size(self) -> int:
        return {AEADAlgorithm.EAX: 16, AEADAlgorithm.OCB: 15, AEADAlgorithm.GCM: 12}[self]

    @property
    def tag_size(self) -> int:
        return 16


class CompressionAlgorithm(IntEnum):
    """Compression algorithm IDs (RFC 9580 section 9.4)."""

    UNCOMPRESSED = 0
    ZIP = 1
    ZLIB = 2
    BZIP2 = 3


class SignatureType(IntEnum):
    """Signature type IDs (RFC 9580 section 5.2.1)."""

    BINARY = 0x00
    TEXT = 0x01
    STANDALONE = 0x02
    GENERIC_CERTIFICATION = 0x10
    PERSONA_CERTIFICATION = 0x11
    CASUAL_CERTIFICATION = 0x12
    POSITIVE_CERTIFICATION = 0x13
    SUBKEY_BINDING = 0x18
    PRIMARY_KEY_BINDING = 0x19
    DIRECT_KEY = 0x1F
    KEY_REVOCATION = 0x20
    SUBKEY_REVOCATION = 0x28
    CERTIFICATION_REVOCATION = 0x30
    TIMESTAMP = 0x40
    THIRD_PARTY_CONFIRMATION = 0x50

    @property
    def is_certification(self) -> bool:
        return 0x10 <= self <= 0x13


class SignatureSubpacketType(IntEnum):
    """Signature subpacket type IDs (RFC 9580 section 5.2.3.7)."""

    CREATION_TIME = 2
    EXPIRATION_TIME = 3
    EXPORTABLE = 4
    TRUST = 5
    REGEX = 6
    REVOCABLE = 7
    KEY_EXPIRATION_TIME = 9
    PREFERRED_SYMMETRIC = 11
    REVOCATION_KEY = 12
    ISSUER_KEY_ID = 16
    NOTATION = 20
    PREFERRED_HASH = 21
    PREFERRED_COMPRESSION = 22
    KEY_SERVER_PREFERENCES = 23
    PREFERRED_KEY_SERVER = 24
    PRIMARY_USER_ID = 25
    POLICY_URI = 26
    KEY_FLAGS = 27
    SIGNERS_USER_ID = 28
    REVOCATION_REASON = 29
    FEATURES = 30
    SIGNATURE_TARGET = 31
    EMBEDDED_SIGNATURE = 32
    ISSUER_FINGERPRINT = 33
    PREFERRED_AEAD = 34  # LibrePGP / draft; kept opaque
    INTENDED_RECIPIENT = 35
    PREFERRED_AEAD_CIPHERSUITES = 39


class S2KUsage(IntEnum):
    """Secret-key protection octet (RFC 9580 section 5.5.3)."""

    UNPROTECTED = 0
    AEAD = 253
    CFB = 254  # SHA-1 checksum
    MALLEABLE_CFB = 255  # 2-octet checksum (legacy)


class S2KType(IntEnum):
    """String-to-key specifier types (RFC 9580 section 3.7.1)."""

    SIMPLE = 0
    SALTED = 1
    ITERATED_SALTED = 3
    ARGON2 = 4
    GNU_DUMMY = 101  # GnuPG extension: secret part absent or on a card


class Features(IntFlag):
    """Features subpacket, first octet (RFC 9580 section 5.2.3.32)."""

    SEIPD_V1 = 0x01
    LIBREPGP_OCB = 0x02  # never acted upon
    V5_KEYS = 0x04
    SEIPD_V2 = 0x08


class KeyFlags(IntFlag):
    """Key flags subpacket, first octet (RFC 9580 section 5.2.3.29)."""

    CERTIFY = 0x01
    SIGN = 0x02
    ENCRYPT_COMMUNICATIONS = 0x04
    ENCRYPT_STORAGE = 0x08
    SPLIT = 0x10
    AUTHENTICATE = 0x20
    GROUP = 0x80

    @classmethod
    def encryption(cls) -> KeyFlags:
        return cls.ENCRYPT_COMMUNICATIONS | cls.ENCRYPT_STORAGE


class RevocationReason(IntEnum):
    """Reason for revocation codes (RFC 9580 section 5.2.3.31)."""

    NO_REASON = 0
    SUPERSEDED = 1
    COMPROMISED = 2
    RETIRED = 3
    USER_ID_INVALID = 32


class Curve(IntEnum):
    """Elliptic curves named by OID in ECDH/ECDSA/EdDSA legacy keys (RFC 9580 section 9.2)."""

    NIST_P256 = 1
    NIST_P384 = 2
    NIST_P521 = 3
    BRAINPOOL_P256 = 4
    BRAINPOOL_P384 = 5
    BRAINPOOL_P512 = 6
    ED25519_LEGACY = 7
    CURVE25519_LEGACY = 8
    ED448_LEGACY = 9
    X448_LEGACY = 10

    @property
    def oid(self) -> bytes:
        """DER body of the OID as stored in keys (without tag and length)."""
        return CURVE_OIDS[self]

    @property
    def field_bytes(self) -> int:
        """Size in bytes of one coordinate / scalar."""
        return _CURVE_FIELD_BYTES[self]

    @classmethod
    def from_oid(cls, oid: bytes) -> Curve:
        try:
            return _OID_TO_CURVE[bytes(oid)]
        except KeyError:
            raise UnsupportedAlgorithm(f"unknown curve OID {bytes(oid).hex()}") from None


CURVE_OIDS: dict[Curve, bytes] = {
    Curve.NIST_P256: bytes.fromhex("2a8648ce3d030107"),
    Curve.NIST_P384: bytes.fromhex("2b81040022"),
    Curve.NIST_P521: bytes.fromhex("2b81040023"),
    Curve.BRAINPOOL_P256: bytes.fromhex("2b2403030208010107"),
    Curve.BRAINPOOL_P384: bytes.fromhex("2b240303020801010b"),
    Curve.BRAINPOOL_P512: bytes.fromhex("2b240303020801010d"),
    Curve.ED25519_LEGACY: bytes.fromhex("2b06010401da470f01"),
    Curve.CURVE25519_LEGACY: bytes.fromhex("2b060104019755010501"),
    Curve.ED448_LEGACY: bytes.fromhex("2b6571"),
    Curve.X448_LEGACY: bytes.fromhex("2b656f"),
}
_OID_TO_CURVE = {oid: curve for curve, oid in CURVE_OIDS.items()}
_CURVE_FIELD_BYTES: dict[Curve, int] = {
    Curve.NIST_P256: 32,
    Curve.NIST_P384: 48,
    Curve.NIST_P521: 66,
    Curve.BRAINPOOL_P256: 32,
    Curve.BRAINPOOL_P384: 48,
    Curve.BRAINPOOL_P512: 64,
    Curve.ED25519_LEGACY: 32,
    Curve.CURVE25519_LEGACY: 32,
    Curve.ED448_LEGACY: 57,
    Curve.X448_LEGACY: 56,
}

# Native key sizes of the RFC 9580 algorithms with fixed-length fields (section 5.5.5).
NATIVE_KEY_SIZE: dict[PublicKeyAlgorithm, int] = {
    PublicKeyAlgorithm.X25519: 32,
    PublicKeyAlgorithm.X448: 56,
    PublicKeyAlgorithm.ED25519: 32,
    PublicKeyAlgorithm.ED448: 57,
}
NATIVE_SIGNATURE_SIZE: dict[PublicKeyAlgorithm, int] = {
    PublicKeyAlgorithm.ED25519: 64,
    PublicKeyAlgorithm.ED448: 114,
}


def enum_or_int(enum: type[IntEnum], value: int) -> IntEnum | int:
    """``enum(value)`` when registered, else the plain int (unknown IDs are kept, not rejected)."""
    try:
        return enum(value)
    except ValueError:
        return value
