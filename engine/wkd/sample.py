"""Deterministic sample keyrings for WKD benchmarks, the demo and tests.

Each key has 1-3 User IDs: a named address in ``example.org``, sometimes an alias there, sometimes one in
``example.net`` (left out when only ``example.org`` is built); about 1 % of the keys share an address
with the key before them (a file holding several keys). Ed25519 keys (with an X25519 subkey) derive from
the seed, so their bytes are reproducible; EdDSA signatures are deterministic too.

RSA-3072 key generation costs about a second a key, so RSA keys are taken from a small ``rsa_pool`` of
key pairs, each made distinct by its creation time (part of the fingerprint) and its User IDs; PKCS#1
v1.5 signatures are deterministic, so a keyring is reproducible for a given pool. Every ``rsa_every``-th
key is RSA (0: none).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

from engine.openpgp.constants import HashAlgorithm, KeyFlags, PublicKeyAlgorithm, SignatureType
from engine.openpgp.public_key import (
    Curve,
    ECDHMaterial,
    EdDSALegacyMaterial,
    PublicKey,
    RSAMaterial,
    SymmetricAlgorithm,
)
from engine.openpgp.signature import Signature, Subpacket, binding_data, certification_data
from engine.openpgp.userid import UserID

__all__ = ["BASE_TIME", "DOMAIN", "rsa_pool", "sample_keyring"]

A = PublicKeyAlgorithm
DOMAIN = "example.org"
OTHER = "example.net"
BASE_TIME = 1_700_000_000  # 2023-11-14: every key is created in the year before
NAMES = ("alice", "Bob", "carol", "Dave", "Émile", "jörg", "Joe.Doe", "mallory", "peggy", "trent")


def rsa_pool(size: int, bits: int = 3072) -> list[Any]:
    """``size`` fresh RSA private keys (slow: cache them with :func:`rsa_pem` if reused)."""
    return [rsa.generate_private_key(65537, bits) for _ in range(size)]


def _u32(t: int, v: int) -> Subpacket:
    return Subpacket(t, v.to_bytes(4, "big"))


def _ed_pair(rng: random.Random, created: int) -> tuple[PublicKey, Any, PublicKey]:
    priv = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    prim = PublicKey.build(
        A.EDDSA_LEGACY,
        EdDSALegacyMaterial(Curve.ED25519_LEGACY, b"\x40" + priv.public_key().public_bytes_raw()),
        created,
    )
    sub_raw = x25519.X25519PrivateKey.from_private_bytes(rng.randbytes(32)).public_key().public_bytes_raw()
    mat = ECDHMaterial(
        Curve.CURVE25519_LEGACY, b"\x40" + sub_raw, HashAlgorithm.SHA256, SymmetricAlgorithm.AES128
    )
    return prim, priv, PublicKey.build(A.ECDH, mat, created, 4, True)


def _rsa_pair(pool: Sequence[Any], i: int, created: int) -> tuple[PublicKey, Any, PublicKey]:
    priv, sub = pool[i % len(pool)], pool[(i + 1) % len(pool)]
    n = priv.public_key().public_numbers()
    s = sub.public_key().public_numbers()
    prim = PublicKey.build(A.RSA, RSAMaterial(n.n, n.e), created)
    return prim, priv, PublicKey.build(A.RSA, RSAMaterial(s.n, s.e), created, 4, True)


def _user_ids(rng: random.Random, i: int) -> list[bytes]:
    name = rng.choice(NAMES)
    local = f"shared{i - 1}" if i % 100 == 1 else f"{name}.{i}"  # ~1 %: the previous key's address
    out = [f"{name.title()} {i} <{local}@{DOMAIN}>"]
    if rng.random() < 0.5:
        out.append(f"<{name}+alias{i}@{DOMAIN}>")
    if rng.random() < 0.4:
        out.append(f"{name} at home <{name}{i}@{OTHER}>")
    if i % 100 == 0:
        out[0] = f"{name.title()} {i} <shared{i}@{DOMAIN}>"
    return [u.encode("utf-8") for u in out]


def sample_cert(rng: random.Random, i: int, pool: Sequence[Any] = (), rsa_every: int = 0) -> bytes:
    """Key number ``i``: RSA from ``pool`` when ``rsa_every`` divides ``i``, else Ed25519 + X25519."""
    created = BASE_TIME - 86400 * 365 + rng.randrange(86400 * 364)
    use_rsa = bool(pool) and rsa_every > 0 and i % rsa_every == rsa_every - 1
    prim, priv, sub = _rsa_pair(pool, i, created) if use_rsa else _ed_pair(rng, created)
    base = [_u32(2, created), Subpacket(33, b"\x04" + prim.fingerprint), Subpacket(16, prim.key_id)]
    halg = HashAlgorithm.SHA256 if use_rsa else HashAlgorithm.SHA512
    out = [prim.serialize()]
    for n, uid in enumerate(_user_ids(rng, i)):
        hashed = [*base, Subpacket(27, bytes((KeyFlags.CERTIFY | KeyFlags.SIGN,)))]
        if n == 0:
            hashed.append(Subpacket(25, b"\x01"))
        data = certification_data(prim, uid)
        sig = Signature.create(
            prim, priv, SignatureType.POSITIVE_CERTIFICATION, data, hashed, hash_algorithm=halg
        )
        out += [UserID(uid).serialize(), sig.serialize()]
    flags = Subpacket(27, bytes((KeyFlags.ENCRYPT_COMMUNICATIONS | KeyFlags.ENCRYPT_STORAGE,)))
    bind = Signature.create(
        prim, priv, SignatureType.SUBKEY_BINDING, binding_data(prim, sub), [*base, flags], hash_algorithm=halg
    )
    out += [sub.serialize(), bind.serialize()]
    return b"".join(out)


def sample_keyring(count: int, seed: int, pool: Sequence[Any] = (), rsa_every: int = 0) -> bytes:
    """``count`` keys as one binary keyring (see the module docstring)."""
    rng = random.Random(seed)
    return b"".join(sample_cert(rng, i, pool, rsa_every) for i in range(count))
