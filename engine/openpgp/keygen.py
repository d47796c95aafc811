"""Key generation: v4 keys gpg 2.2 accepts (Ed25519 legacy + Cv25519, RSA) and v6 Ed25519 + X25519.

Every key gets one User ID with a positive self-certification, an encryption subkey with its binding,
and optionally passphrase protection (v4: iterated-salted S2K, AES-256 CFB, SHA-1 check; v6: AEAD OCB).
"""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

from engine.armor import armor as armor_bytes
from engine.errors import InvalidArgument
from engine.openpgp.constants import (
    AEADAlgorithm,
    CompressionAlgorithm,
    Curve,
    Features,
    HashAlgorithm,
    KeyFlags,
    PublicKeyAlgorithm,
    SignatureType,
    SymmetricAlgorithm,
)
from engine.openpgp.keys import Cert, read_cert
from engine.openpgp.public_key import (
    ECDHMaterial,
    EdDSALegacyMaterial,
    NativeMaterial,
    PublicKey,
    RSAMaterial,
)
from engine.openpgp.s2k import S2K
from engine.openpgp.secret_key import SecretKey
from engine.openpgp.signature import Signature, Subpacket, binding_data, certification_data, key_data
from engine.openpgp.userid import UserID

KINDS = ("ed25519", "rsa2048", "rsa3072", "rsa4096")
A = PublicKeyAlgorithm


def _u32(t: int, value: int) -> Subpacket:
    return Subpacket(t, value.to_bytes(4, "big"))


def _issuer(key: PublicKey) -> list[Subpacket]:
    out = [Subpacket(33, bytes((key.version,)) + key.fingerprint)]
    return out if key.version == 6 else [*out, Subpacket(16, key.key_id)]


def _pair(kind: str, version: int, created: int, sub: bool) -> tuple[PublicKey, Any]:
    """A fresh key pair: the public packet and the `cryptography` private key."""
    if kind.startswith("rsa"):
        priv: Any = rsa.generate_private_key(65537, int(kind[3:]))
        n = priv.public_key().public_numbers()
        return PublicKey.build(A.RSA, RSAMaterial(n.n, n.e), created, version, sub), priv
    if sub:
        priv = x25519.X25519PrivateKey.generate()
        raw = priv.public_key().public_bytes_raw()
        if version == 6:
            return PublicKey.build(A.X25519, NativeMaterial(raw), created, 6, True), priv
        mat = ECDHMaterial(
            Curve.CURVE25519_LEGACY, b"\x40" + raw, HashAlgorithm.SHA256, SymmetricAlgorithm.AES128
        )
        return PublicKey.build(A.ECDH, mat, created, 4, True), priv
    priv = ed25519.Ed25519PrivateKey.generate()
    raw = priv.public_key().public_bytes_raw()
    if version == 6:
        return PublicKey.build(A.ED25519, NativeMaterial(raw), created, 6), priv
    return PublicKey.build(
        A.EDDSA_LEGACY, EdDSALegacyMaterial(Curve.ED25519_LEGACY, b"\x40" + raw), created
    ), priv


def _key_properties(version: int, expires: int | None) -> list[Subpacket]:
    """Preferences, features and key flags of the primary key (section 5.2.3)."""
    syms = bytes((SymmetricAlgorithm.AES256, SymmetricAlgorithm.AES192, SymmetricAlgorithm.AES128))
    hashes = bytes((HashAlgorithm.SHA512, HashAlgorithm.SHA384, HashAlgorithm.SHA256))
    comp = bytes((CompressionAlgorithm.UNCOMPRESSED, CompressionAlgorithm.ZLIB, CompressionAlgorithm.ZIP))
    feats = Features.SEIPD_V1 | (Features.SEIPD_V2 if version == 6 else 0)
    out = [
        Subpacket(27, bytes((KeyFlags.CERTIFY | KeyFlags.SIGN,))),
        Subpacket(11, syms),
        Subpacket(21, hashes),
        Subpacket(22, comp),
        Subpacket(30, bytes((feats,))),
    ]
    if version == 6:
        out.append(Subpacket(39, bytes((SymmetricAlgorithm.AES256, AEADAlgorithm.OCB))))
    if expires:
        out.append(_u32(9, expires))
    return out


def generate(
    user_id: str,
    kind: str = "ed25519",
    passphrase: str | bytes | None = None,
    version: int = 4,
    created: int | None = None,
    expires: int | None = None,
    s2k: S2K | None = None,
) -> Cert:
    """A new secret certificate: ``kind`` one of :data:`KINDS`; ``expires`` in seconds after creation.

    ``version=6`` is only for ``ed25519`` (Ed25519 + X25519, RFC 9580); gpg 2.2 cannot read it.
    """
    if kind not in KINDS:
        raise InvalidArgument(f"unknown key kind {kind!r}; choose one of {', '.join(KINDS)}")
    if version not in (4, 6) or (version == 6 and kind != "ed25519"):
        raise InvalidArgument("version 6 keys are generated for kind 'ed25519' only")
    created = int(time.time()) if created is None else created
    primary, ppriv = _pair(kind, version, created, False)
    subkey, spriv = _pair(kind, version, created, True)
    uid = UserID(user_id.encode("utf-8"))
    base = [_u32(2, created), *_issuer(primary)]
    props = _key_properties(version, expires)
    halg = HashAlgorithm.SHA512
    packets = []
    direct = None
    if version == 6:  # v6 keys carry their properties on a direct-key signature (section 10.1.1)
        direct = Signature.create(primary, ppriv, SignatureType.DIRECT_KEY, key_data(primary), base + props)
    cert_sig = Signature.create(
        primary,
        ppriv,
        SignatureType.POSITIVE_CERTIFICATION,
        certification_data(primary, uid.data),
        [*base, *props, Subpacket(25, b"\x01")],
        hash_algorithm=halg,
    )
    sub_props = [Subpacket(27, bytes((KeyFlags.ENCRYPT_COMMUNICATIONS | KeyFlags.ENCRYPT_STORAGE,)))]
    if expires:
        sub_props.append(_u32(9, expires))
    binding = Signature.create(
        primary,
        ppriv,
        SignatureType.SUBKEY_BINDING,
        binding_data(primary, subkey),
        base + sub_props,
        hash_algorithm=halg,
    )
    protect = {"passphrase": passphrase, "s2k": s2k}
    packets.append(SecretKey.from_private(primary, ppriv, **protect).serialize())
    if direct is not None:
        packets.append(direct.serialize())
    packets += [uid.serialize(), cert_sig.serialize()]
    packets += [SecretKey.from_private(subkey, spriv, **protect).serialize(), binding.serialize()]
    return read_cert(b"".join(packets), source="keygen")


def export(cert: Cert, secret: bool = False, armor: bool = True) -> bytes:
    """The certificate (or, with ``secret``, the transferable secret key) in binary or armored form."""
    data = cert.serialize(secret=secret)
    if not armor:
        return data
    return armor_bytes(data, "PRIVATE KEY BLOCK" if secret else "PUBLIC KEY BLOCK")
