"""Private-key operations behind one interface: turn a PKESK into a session key.

The message layer never touches secret keys; it hands each PKESK to a :class:`KeyProvider`. The
in-process provider here unlocks soft keys once and keeps them; gpg-agent, PKCS#11 and card providers
implement the same Protocol elsewhere (``engine.keys``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from engine.errors import DecryptionFailed, NoMatchingKey, UnsupportedAlgorithm
from engine.openpgp import ecdh
from engine.openpgp.constants import PublicKeyAlgorithm
from engine.openpgp.pkesk import Pkesk, SessionKey, decrypt_session_key
from engine.openpgp.public_key import PublicKey
from engine.openpgp.secret_key import UnlockedKey


@runtime_checkable
class KeyProvider(Protocol):
    """Something that can decrypt session keys for some set of (sub)keys."""

    def decrypt_session_key(self, pkesk: Pkesk) -> SessionKey:
        """The session key in ``pkesk``; NoMatchingKey when no key of ours fits, DecryptionFailed when
        a matching key could not decrypt it."""
        ...

    def key_ids(self) -> frozenset[bytes]:
        """Eight-octet key IDs of the decryption keys on offer."""
        ...

    def fingerprints(self) -> frozenset[bytes]:
        """Fingerprints of the decryption keys on offer."""
        ...


def _ecdh_params(public: PublicKey) -> ecdh.EcdhParams | None:
    if public.algorithm != PublicKeyAlgorithm.ECDH or public.curve is None:
        return None
    return ecdh.EcdhParams(public.curve, public.kdf_hash, public.kdf_cipher)  # type: ignore[arg-type]


def decrypt_with(key: UnlockedKey, pkesk: Pkesk) -> SessionKey:
    """Session key of ``pkesk`` with one unlocked key (no ID matching here)."""
    return _Prepared.of(key).decrypt(pkesk)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An unlocked key with the per-key constants of its PKESK decryption computed once: the ECDH KDF
    parameters and parameter string, the raw public key of an X25519/X448 key (HKDF input)."""

    key: UnlockedKey
    params: ecdh.EcdhParams | None
    param: bytes | None
    own_public: bytes | None

    @classmethod
    def of(cls, key: UnlockedKey) -> _Prepared:
        public = key.public
        params = _ecdh_params(public)
        param = params.param_string(public.fingerprint) if params is not None else None
        own = None
        if public.algorithm in (PublicKeyAlgorithm.X25519, PublicKeyAlgorithm.X448):
            own = key.private.public_key().public_bytes_raw()
        return cls(key, params, param, own)

    def decrypt(self, pkesk: Pkesk) -> SessionKey:
        k = self.key
        return decrypt_session_key(
            pkesk, k.private, k.public.fingerprint, self.params, param=self.param, own_public=self.own_public
        )


class InProcessKeyProvider:
    """Soft keys held in this process, unlocked once at construction.

    ``keys`` are secret certificates (whose encryption-capable secret keys are taken), ``SecretKey``
    packets, or ready ``UnlockedKey`` values. Protected keys are unlocked with ``passphrase`` here, once.
    """

    def __init__(self, keys: Iterable[Any], passphrase: bytes | str | None = None) -> None:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        self._keys: list[UnlockedKey] = []
        for item in keys:
            for secret in _secret_keys_of(item):
                if isinstance(secret, UnlockedKey):
                    self._keys.append(secret)
                elif _can_encrypt(secret.public.algorithm) and secret.has_secret:
                    self._keys.append(secret.unlock(passphrase if secret.is_protected else None))
        self._prepared = [_Prepared.of(k) for k in self._keys]
        self._by_id: dict[bytes, list[_Prepared]] = {}
        for p in self._prepared:
            self._by_id.setdefault(p.key.public.key_id, []).append(p)

    def key_ids(self) -> frozenset[bytes]:
        return frozenset(self._by_id)

    def fingerprints(self) -> frozenset[bytes]:
        return frozenset(k.public.fingerprint for k in self._keys)

    def decrypt_session_key(self, pkesk: Pkesk) -> SessionKey:
        if pkesk.anonymous:
            candidates = [p for p in self._prepared if p.key.public.algorithm == pkesk.algorithm]
        else:
            candidates = self._by_id.get(pkesk.key_id, [])
            if pkesk.fingerprint is not None:
                candidates = [p for p in candidates if p.key.public.fingerprint == pkesk.fingerprint]
        if not candidates:
            raise NoMatchingKey("no secret key for this recipient")
        for p in candidates:
            try:
                return p.decrypt(pkesk)
            except (DecryptionFailed, UnsupportedAlgorithm):
                if len(candidates) == 1:
                    raise
        raise DecryptionFailed("no candidate key could decrypt the anonymous recipient")


def _can_encrypt(algorithm: Any) -> bool:
    return isinstance(algorithm, PublicKeyAlgorithm) and algorithm.can_encrypt


def _secret_keys_of(item: Any) -> list[Any]:
    """The secret (sub)keys of a certificate-like object, or the object itself."""
    if isinstance(item, UnlockedKey):
        return [item]
    for attr in ("secret_keys", "secret_subkeys"):
        keys = getattr(item, attr, None)
        if keys is not None:
            return list(keys() if callable(keys) else keys)
    return [item]
