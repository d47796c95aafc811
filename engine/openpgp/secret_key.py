"""Secret-key and secret-subkey packets (tags 5 and 7; RFC 9580 section 5.5.3), v4 and v6.

Stable attributes of :class:`SecretKey`: ``public`` (:class:`PublicKey`), ``usage`` (S2K usage octet),
``cipher``, ``aead``, ``s2k``, ``iv``, ``secret_data`` (encrypted or plain secret fields as stored),
``fingerprint``, ``key_id``, ``algorithm``, ``version``, ``is_subkey``, ``is_protected``, ``has_secret``.

:meth:`SecretKey.unlock` derives the key once and returns an :class:`UnlockedKey`: ``public``,
``private`` (a `cryptography` private key: RSAPrivateKey, DSAPrivateKey, EllipticCurvePrivateKey,
Ed25519/Ed448PrivateKey, X25519/X448PrivateKey; Curve25519 legacy ECDH is an X25519PrivateKey),
``fingerprint``, ``key_id``, ``algorithm``. A wrong passphrase raises :class:`WrongPassphrase`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import MalformedPacket, UnsupportedAlgorithm, UnusableKey
from engine.openpgp.aead import aead_for
from engine.openpgp.constants import (
    NATIVE_KEY_SIZE,
    AEADAlgorithm,
    Curve,
    PacketTag,
    PublicKeyAlgorithm,
    S2KType,
    S2KUsage,
    SymmetricAlgorithm,
)
from engine.openpgp.mpi import mpi, mpi_bytes, read_mpi, read_mpi_bytes
from engine.openpgp.packet import BodyReader, Packet, write_packet
from engine.openpgp.public_key import (
    _EC_CURVES,
    DSAMaterial,
    ECDHMaterial,
    ECDSAMaterial,
    EdDSALegacyMaterial,
    PublicKey,
    RSAMaterial,
)
from engine.openpgp.s2k import S2K
from engine.openpgp.symmetric import cfb_decryptor, cfb_encryptor

A = PublicKeyAlgorithm


class WrongPassphrase(UnusableKey):
    """The passphrase does not unlock this secret key (checksum, hash or AEAD tag mismatch)."""


@dataclass(frozen=True, eq=False)
class UnlockedKey:
    """A secret key ready for use: its public packet and the `cryptography` private key object."""

    public: PublicKey
    private: Any

    @property
    def fingerprint(self) -> bytes:
        return self.public.fingerprint

    @property
    def key_id(self) -> bytes:
        return self.public.key_id

    @property
    def algorithm(self) -> PublicKeyAlgorithm:
        return self.public.algorithm


@dataclass(frozen=True, eq=False)
class SecretKey:
    """A parsed or built secret (sub)key packet; still locked until :meth:`unlock`."""

    public: PublicKey
    usage: int
    secret_data: bytes
    cipher: SymmetricAlgorithm | None = None
    aead: AEADAlgorithm | None = None
    s2k: S2K | None = None
    iv: bytes = b""

    fingerprint = property(lambda self: self.public.fingerprint)
    key_id = property(lambda self: self.public.key_id)
    algorithm = property(lambda self: self.public.algorithm)
    version = property(lambda self: self.public.version)
    is_subkey = property(lambda self: self.public.is_subkey)

    @property
    def is_protected(self) -> bool:
        return self.usage != S2KUsage.UNPROTECTED

    @property
    def has_secret(self) -> bool:
        """False for gpg's stubs (GNU dummy S2K: secret absent or on a smart card)."""
        return self.s2k is None or self.s2k.has_secret

    @property
    def tag(self) -> PacketTag:
        return PacketTag.SECRET_SUBKEY if self.is_subkey else PacketTag.SECRET_KEY

    # -- parse / serialize ---------------------------------------------------------------------
    @classmethod
    def parse(cls, packet: Packet) -> SecretKey:
        r = BodyReader.of(packet, "secret key")
        public = PublicKey.read(r, packet.tag == PacketTag.SECRET_SUBKEY)
        usage = r.u8("S2K usage")
        if usage == 0:
            return cls(public, usage, r.rest())
        if usage not in (S2KUsage.AEAD, S2KUsage.CFB, S2KUsage.MALLEABLE_CFB):
            raise UnsupportedAlgorithm(
                f"legacy secret key protection (usage {usage}) at byte {r.base + r.pos}"
            )
        if public.version == 6:
            r.u8("protection fields length")
        cipher = _sym(r.u8("cipher"), r)
        aead = AEADAlgorithm(r.u8("AEAD mode")) if usage == S2KUsage.AEAD else None
        if public.version == 6:
            r.u8("S2K length")
        s2k = S2K.read(r)
        iv = b""
        if s2k.has_secret:
            iv = r.take(aead.nonce_size if aead else cipher.block_size, "IV")
        return cls(public, usage, r.rest(), cipher, aead, s2k, iv)

    def body(self) -> bytes:
        out = self.public.body + bytes((self.usage,))
        if self.usage == 0:
            return out + self.secret_data
        s2k = self.s2k.serialize() if self.s2k else b""
        fields = bytes((self.cipher or 0,))
        if self.aead is not None:
            fields += bytes((self.aead,))
        if self.version == 6:
            fields += bytes((len(s2k),))
        fields += s2k + self.iv
        if self.version == 6:
            out += bytes((len(fields),))
        return out + fields + self.secret_data

    def serialize(self) -> bytes:
        return write_packet(self.tag, self.body())

    # -- unlocking -------------------------------------------------------------------------------
    def unlock(self, passphrase: bytes | str | None = None) -> UnlockedKey:
        """Decrypt the secret fields once; WrongPassphrase / UnusableKey on failure."""
        if not self.has_secret:
            raise UnusableKey(f"secret key {self.public.fingerprint_hex} is a stub (absent or on a card)")
        if self.usage == 0:
            plain = self.secret_data
            if self.version != 6:
                plain = _check_sum16(plain, UnusableKey("secret key checksum mismatch"))
        else:
            if passphrase is None:
                raise UnusableKey(f"secret key {self.public.fingerprint_hex} needs a passphrase")
            plain = self._decrypt(passphrase)
        try:
            private = _private_from_fields(self.public, BodyReader(plain, what="secret key fields"))
        except (MalformedPacket, ValueError) as e:
            if self.usage == S2KUsage.MALLEABLE_CFB:
                raise WrongPassphrase("wrong passphrase") from None
            raise UnusableKey(f"secret key material invalid: {e}") from None
        return UnlockedKey(self.public, private)

    def _decrypt(self, passphrase: bytes | str) -> bytes:
        assert self.s2k is not None and self.cipher is not None
        key = self.s2k.derive(passphrase, self.cipher.key_size)
        if self.usage == S2KUsage.AEAD:
            assert self.aead is not None
            info = bytes((0xC0 | self.tag, self.version, self.cipher, self.aead))
            kek = HKDF(hashes.SHA256(), self.cipher.key_size, None, info).derive(key)
            try:
                ad = bytes((0xC0 | self.tag,)) + self.public.body
                return aead_for(self.aead, self.cipher, kek).decrypt(self.iv, self.secret_data, ad)
            except InvalidTag:
                raise WrongPassphrase("wrong passphrase (AEAD tag mismatch)") from None
        d = cfb_decryptor(self.cipher, key, self.iv)
        plain = d.update(self.secret_data) + d.finalize()
        if self.usage == S2KUsage.CFB:
            body, digest = plain[:-20], plain[-20:]
            if len(plain) < 20 or not hmac.compare_digest(hashlib.sha1(body).digest(), digest):
                raise WrongPassphrase("wrong passphrase (SHA-1 check failed)")
            return body
        return _check_sum16(plain, WrongPassphrase("wrong passphrase (checksum mismatch)"))

    # -- building (keygen) ------------------------------------------------------------------------
    @classmethod
    def from_private(
        cls,
        public: PublicKey,
        private: Any,
        passphrase: bytes | str | None = None,
        s2k: S2K | None = None,
        cipher: SymmetricAlgorithm = SymmetricAlgorithm.AES256,
    ) -> SecretKey:
        """A secret key packet for ``private``; protected with S2K usage 254 (CFB + SHA-1) when a
        passphrase is given (v6 keys use usage 253, AEAD OCB)."""
        fields = encode_secret_fields(public, private)
        if passphrase is None:
            tail = b"" if public.version == 6 else (sum(fields) & 0xFFFF).to_bytes(2, "big")
            return cls(public, 0, fields + tail)
        s2k = s2k or S2K.iterated()
        key = s2k.derive(passphrase, cipher.key_size)
        if public.version == 6:
            mode = AEADAlgorithm.OCB
            tag = PacketTag.SECRET_SUBKEY if public.is_subkey else PacketTag.SECRET_KEY
            info = bytes((0xC0 | tag, 6, cipher, mode))
            kek = HKDF(hashes.SHA256(), cipher.key_size, None, info).derive(key)
            iv = os.urandom(mode.nonce_size)
            data = aead_for(mode, cipher, kek).encrypt(iv, fields, bytes((0xC0 | tag,)) + public.body)
            return cls(public, S2KUsage.AEAD, data, cipher, mode, s2k, iv)
        iv = os.urandom(cipher.block_size)
        e = cfb_encryptor(cipher, key, iv)
        data = e.update(fields + hashlib.sha1(fields).digest()) + e.finalize()
        return cls(public, S2KUsage.CFB, data, cipher, None, s2k, iv)

    def public_only(self) -> PublicKey:
        return self.public


def _sym(value: int, r: BodyReader) -> SymmetricAlgorithm:
    try:
        return SymmetricAlgorithm(value)
    except ValueError:
        raise UnsupportedAlgorithm(f"symmetric algorithm {value} at byte {r.base + r.pos - 1}") from None


def _check_sum16(plain: bytes, error: Exception) -> bytes:
    if len(plain) < 2 or (sum(plain[:-2]) & 0xFFFF) != int.from_bytes(plain[-2:], "big"):
        raise error
    return plain[:-2]


def _private_from_fields(pub: PublicKey, r: BodyReader) -> Any:
    """Build the `cryptography` private key from the plaintext secret fields (section 5.5.5)."""
    m = pub.material
    algo = pub.algorithm
    if isinstance(m, RSAMaterial):
        d, p, q = read_mpi(r, "RSA d"), read_mpi(r, "RSA p"), read_mpi(r, "RSA q")
        read_mpi(r, "RSA u")
        r.expect_end()
        if p * q != m.n:
            raise ValueError("RSA p*q does not match n")
        nums = rsa.RSAPrivateNumbers(
            p,
            q,
            d,
            rsa.rsa_crt_dmp1(d, p),
            rsa.rsa_crt_dmq1(d, q),
            rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(m.e, m.n),
        )
        return nums.private_key()
    if isinstance(m, DSAMaterial):
        x = read_mpi(r, "DSA x")
        r.expect_end()
        params = dsa.DSAParameterNumbers(m.p, m.q, m.g)
        return dsa.DSAPrivateNumbers(x, dsa.DSAPublicNumbers(m.y, params)).private_key()
    if algo in NATIVE_KEY_SIZE:
        raw = r.take(NATIVE_KEY_SIZE[algo], "native secret key")
        r.expect_end()
        priv = _NATIVE_PRIVATE[algo].from_private_bytes(raw)
        _same_public(priv, pub.to_crypto())
        return priv
    if isinstance(m, EdDSALegacyMaterial | ECDHMaterial | ECDSAMaterial):
        scalar = read_mpi_bytes(r, "EC secret")
        r.expect_end()
        if m.curve == Curve.ED25519_LEGACY:
            priv = ed25519.Ed25519PrivateKey.from_private_bytes(scalar.rjust(32, b"\x00"))
        elif m.curve == Curve.CURVE25519_LEGACY:
            # RFC 9580 section 5.5.5.6: the MPI is the native X25519 scalar in reverse octet order.
            priv = x25519.X25519PrivateKey.from_private_bytes(scalar.rjust(32, b"\x00")[::-1])
        elif m.curve in _EC_CURVES:
            priv = ec.derive_private_key(int.from_bytes(scalar, "big"), _EC_CURVES[m.curve]())
        else:
            raise UnsupportedAlgorithm(f"secret keys on curve {m.curve.name}")
        _same_public(priv, pub.to_crypto())
        return priv
    raise UnsupportedAlgorithm(f"secret keys of algorithm {algo!r}")


def _same_public(priv: Any, pub: Any) -> None:
    a, b = priv.public_key(), pub
    if isinstance(b, ec.EllipticCurvePublicKey):
        if a.public_numbers() != b.public_numbers():
            raise ValueError("secret does not match the public key")
    elif a.public_bytes_raw() != b.public_bytes_raw():
        raise ValueError("secret does not match the public key")


_NATIVE_PRIVATE: dict[Any, Any] = {
    A.X25519: x25519.X25519PrivateKey,
    A.X448: x448.X448PrivateKey,
    A.ED25519: ed25519.Ed25519PrivateKey,
    A.ED448: ed448.Ed448PrivateKey,
}


def encode_secret_fields(pub: PublicKey, private: Any) -> bytes:
    """The plaintext secret fields of ``private`` (no checksum), as ``pub``'s algorithm stores them."""
    if isinstance(private, rsa.RSAPrivateKey):
        n = private.private_numbers()
        p, q = sorted((n.p, n.q))  # OpenPGP wants p < q with u = p^-1 mod q
        return mpi(n.d) + mpi(p) + mpi(q) + mpi(pow(p, -1, q))
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return mpi(private.private_numbers().private_value)
    raw = private.private_bytes_raw()
    if pub.algorithm == A.EDDSA_LEGACY:
        return mpi_bytes(raw)
    if pub.algorithm == A.ECDH:  # Curve25519 legacy: clamped scalar, big-endian (reversed)
        k = bytearray(raw)
        k[0] &= 248
        k[31] = (k[31] & 127) | 64
        return mpi_bytes(bytes(k[::-1]))
    return raw


__all__ = ["S2K", "S2KType", "SecretKey", "UnlockedKey", "WrongPassphrase", "encode_secret_fields"]
