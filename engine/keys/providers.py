"""Adapters from the raw private-key operations (agent, PKCS#11) to the OpenPGP ``KeyProvider`` Protocol.

A backend does only the secret step: RSA returns the PKCS#1 v1.5 unpadded frame, ECDH returns the shared
secret (X coordinate / X25519 output). The frame parsing, RFC 6637 KDF and AES key unwrap run here with
the recipient's public key, so every backend yields the same :class:`SessionKey`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable
from typing import Protocol

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from engine.errors import DecryptionFailed, InvalidArgument, NoMatchingKey, UnsupportedAlgorithm
from engine.keys.agent import AgentConnection, PassphraseSource, shared_secret_from_point
from engine.keys.errors import KeyProviderError, NoSecretKey
from engine.openpgp import ecdh
from engine.openpgp.constants import PublicKeyAlgorithm, SymmetricAlgorithm
from engine.openpgp.keys import read_certs
from engine.openpgp.pkesk import Pkesk, SessionKey
from engine.openpgp.public_key import PublicKey

_RSA = (PublicKeyAlgorithm.RSA, PublicKeyAlgorithm.RSA_ENCRYPT_ONLY)


class RawDecryptor(Protocol):
    """The secret half of one key, wherever it lives."""

    def rsa_decrypt(self, c: bytes) -> bytes:
        """PKCS#1 v1.5 unpadded frame of the RSA ciphertext ``c``."""
        ...

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        """Shared secret (X coordinate, or the X25519 output) with the ephemeral ``point``."""
        ...


class AgentDecryptor:
    """One key held by gpg-agent (soft or on a card behind scdaemon). ``modulus_len``: of an RSA key, so
    ciphertexts go out padded to it (cards need that); ``card``: the card's serial number, if on one."""

    def __init__(
        self, agent: AgentConnection, keygrip: str, modulus_len: int | None = None, card: str | None = None
    ) -> None:
        self.agent, self.keygrip, self.modulus_len, self.card = agent, keygrip, modulus_len, card

    def rsa_decrypt(self, c: bytes) -> bytes:
        return self.agent.pkdecrypt_rsa(self.keygrip, c, self.modulus_len)

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        s_field = bytes((len(wrapped),)) + wrapped  # as gpg sends it: with its length octet
        return shared_secret_from_point(self.agent.ecdh_shared_point(self.keygrip, point, s_field))


class Pkcs11Decryptor:
    """One key on a PKCS#11 token (a :class:`engine.keys.pkcs11.Pkcs11Key`)."""

    def __init__(self, key: object) -> None:
        self.key = key

    def rsa_decrypt(self, c: bytes) -> bytes:
        return self.key.rsa_decrypt(c)  # type: ignore[attr-defined, no-any-return]

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        return self.key.ecdh_derive(point)  # type: ignore[attr-defined, no-any-return]


def _session_key(cipher: int | None, key: bytes) -> SessionKey:
    if cipher is None:
        return SessionKey(None, key)
    try:
        sym = SymmetricAlgorithm(cipher)
    except ValueError:
        raise DecryptionFailed("decryption failed") from None
    if sym.key_size != len(key):
        raise DecryptionFailed("decryption failed")
    return SessionKey(sym, key)


def decrypt_pkesk(pkesk: Pkesk, public: PublicKey, raw: RawDecryptor) -> SessionKey:
    """The session key of ``pkesk`` (addressed to ``public``) using the backend ``raw``."""
    with_alg = pkesk.version == 3
    if pkesk.algorithm in _RSA:
        frame = raw.rsa_decrypt(pkesk.fields[0])
        return _session_key(*ecdh.split_checked_key(frame, with_alg))
    if pkesk.algorithm == PublicKeyAlgorithm.ECDH:
        if public.curve is None or public.kdf_hash is None or public.kdf_cipher is None:
            raise DecryptionFailed("ECDH key without KDF parameters")
        params = ecdh.EcdhParams(public.curve, public.kdf_hash, public.kdf_cipher)
        point, wrapped = pkesk.fields
        ecdh.decode_point(params.curve, point)  # refuse a malformed point before the token sees it
        kek = ecdh.kdf(params, raw.ecdh_shared(point, wrapped), public.fingerprint)
        try:
            frame = aes_key_unwrap(kek, wrapped)
        except (InvalidUnwrap, ValueError):
            raise DecryptionFailed("decryption failed") from None
        return _session_key(*ecdh.parse_session_key_frame(frame, with_alg))
    raise UnsupportedAlgorithm(f"key providers do not decrypt public-key algorithm {pkesk.algorithm}")


class RemoteKeyProvider:
    """A ``KeyProvider`` over keys whose secret halves live outside this process."""

    def __init__(self, keys: Iterable[tuple[PublicKey, RawDecryptor]]) -> None:
        self._keys = list(keys)
        if not self._keys:
            raise NoMatchingKey("no usable decryption key")
        self._by_id: dict[bytes, list[tuple[PublicKey, RawDecryptor]]] = {}
        for entry in self._keys:
            self._by_id.setdefault(entry[0].key_id, []).append(entry)

    @property
    def entries(self) -> list[tuple[PublicKey, RawDecryptor]]:
        """The keys as (public key, backend) pairs (what a card broker serves)."""
        return list(self._keys)

    def key_ids(self) -> frozenset[bytes]:
        return frozenset(self._by_id)

    def fingerprints(self) -> frozenset[bytes]:
        return frozenset(pub.fingerprint for pub, _ in self._keys)

    def decrypt_session_key(self, pkesk: Pkesk) -> SessionKey:
        if pkesk.anonymous:
            candidates = [e for e in self._keys if e[0].algorithm == pkesk.algorithm]
        else:
            candidates = self._by_id.get(pkesk.key_id, [])
            if pkesk.fingerprint is not None:
                candidates = [e for e in candidates if e[0].fingerprint == pkesk.fingerprint]
        if not candidates:
            raise NoMatchingKey("no secret key for this recipient")
        for public, raw in candidates:  # provider failures (PIN, token gone) propagate at once
            try:
                return decrypt_pkesk(pkesk, public, raw)
            except DecryptionFailed:
                if len(candidates) == 1:
                    raise
        raise DecryptionFailed("no candidate key could decrypt the anonymous recipient")


# -- building providers --------------------------------------------------------------------------------
def _encryption_keys(certs: Iterable[object]) -> list[PublicKey]:
    """Primary keys and subkeys that can decrypt; expiry is ignored on purpose (old archives)."""
    keys: list[PublicKey] = []
    for cert in certs:
        for key in [cert.primary] + [s.key for s in cert.subkeys]:  # type: ignore[attr-defined]
            if getattr(key.algorithm, "can_encrypt", False):
                keys.append(key)
    return keys


def agent_provider(
    gnupghome: str | os.PathLike[str] | None = None,
    fingerprint: str | None = None,
    passphrase: PassphraseSource = None,
    agent: AgentConnection | None = None,
    on_card: bool | None = None,
) -> RemoteKeyProvider:
    """Every decryption key whose secret gpg-agent holds for ``gnupghome`` (or only the key, or the
    encryption subkeys of the primary key, that ``fingerprint`` names). ``on_card``: only the keys on a
    card (True, per the agent's ``KEYINFO``) or only the soft ones (False); both when None."""
    agent = agent or AgentConnection(gnupghome, passphrase=passphrase)
    cards = agent.card_keys()
    secrets = {k.fingerprint.upper(): k for k in agent.secret_keys()}
    if on_card is not None:
        secrets = {f: k for f, k in secrets.items() if (k.keygrip.upper() in cards) == on_card}
    home = agent.gnupghome
    proc = subprocess.run(
        ["gpg", *(["--homedir", home] if home else []), "--batch", "--export", *secrets],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise KeyProviderError(f"gpg --export failed: {proc.stderr.decode(errors='replace').strip()}")
    want = fingerprint.upper() if fingerprint else None
    entries: list[tuple[PublicKey, RawDecryptor]] = []
    for pub in _encryption_keys(read_certs(proc.stdout, "gpg --export")):
        secret = secrets.get(pub.fingerprint_hex)
        if secret is None:
            continue
        if want and want not in (pub.fingerprint_hex, pub.key_id.hex().upper(), secret.primary_fingerprint):
            continue
        size = (pub.material.n.bit_length() + 7) // 8 if pub.algorithm in _RSA else None  # type: ignore[union-attr]
        entries.append((pub, AgentDecryptor(agent, secret.keygrip, size, cards.get(secret.keygrip.upper()))))
    if not entries:
        where = {True: " on a card", False: " off cards"}.get(on_card, "")  # type: ignore[arg-type]
        raise NoSecretKey(
            f"gpg-agent holds no decryption key{where}{' for ' + fingerprint if fingerprint else ''}"
        )
    return RemoteKeyProvider(entries)


def pkcs11_provider(
    uri: str,
    certs: Iterable[object],
    module: str | None = None,
    pin: str | None = None,
    opener: Callable[..., object] | None = None,
) -> RemoteKeyProvider:
    """The token key ``uri`` names, paired with its OpenPGP public key from ``certs``: an RSA key by its
    modulus; an EC key by its CKA_ID (fingerprint or key ID) or, failing that, the only key on its curve."""
    if opener is None:
        from engine.keys.pkcs11 import Pkcs11Key as opener
    key = opener(uri, module=module, pin=pin)
    matches = [pub for pub in _encryption_keys(certs) if _same_key(pub, key)]
    if len(matches) > 1:
        by_id = [p for p in matches if key.object_id in (p.fingerprint, p.key_id)]  # type: ignore[attr-defined]
        matches = by_id or matches
    if len(matches) != 1:
        raise InvalidArgument(f"{key}: {len(matches)} OpenPGP keys match it; give exactly its certificate")
    return RemoteKeyProvider([(matches[0], Pkcs11Decryptor(key))])


_CURVE_NAMES = {
    "nistp256": "NIST_P256",
    "nistp384": "NIST_P384",
    "nistp521": "NIST_P521",
    "x25519": "CURVE25519_LEGACY",
}


def _same_key(pub: PublicKey, key: object) -> bool:
    algorithm = key.algorithm  # type: ignore[attr-defined]
    if algorithm == "rsa":
        return pub.algorithm in _RSA and pub.material.n == key.modulus  # type: ignore[attr-defined, union-attr]
    return (
        pub.algorithm == PublicKeyAlgorithm.ECDH
        and pub.curve is not None
        and (pub.curve.name == _CURVE_NAMES.get(algorithm))
    )
