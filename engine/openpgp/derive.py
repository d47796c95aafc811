"""Deterministic "random" values for re-encryption, derived with HKDF-SHA256 (RFC 5869) from a secret
the message already carries.

A re-encryption must give the same bytes when it is run again (a resumed run must end byte-identical to an
uninterrupted one), without keeping a seed on disk. Every value that would be random is therefore derived
from the message's session key, which the new PKESKs protect anyway (encrypt-with-hash: the session key has
full entropy, so the derived values reveal nothing a PKESK does not already hide):

- a new PKESK (ephemeral secrets of ECDH/X25519/X448, RSA PKCS#1 v1.5 padding): IKM = cipher octet ||
  session key, salt = :data:`REENCRYPT_SALT`, info = recipient fingerprint || ``b"pkesk"`` || counter
  (:func:`pkesk_randomness`);
- a message encrypted afresh (``--mode full``): the new session key and the SEIPD v1 prefix / v2 salt
  from the OLD session key, the new recipients' fingerprints and the payload's SHA-256
  (:func:`full_randomness`); its PKESKs then from the new session key as above. Whoever holds the old
  session key could read the old message anyway; the new message carries no trace of the old key.

Each call of a derived source takes the next counter value, so a fixed sequence of calls gives a fixed
sequence of outputs and no two calls share output.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

from engine.openpgp.ecdh import RandomBytes

#: HKDF salt of everything a re-encryption derives (bump the version to change the derivation).
REENCRYPT_SALT = b"pgpbulk reencrypt v1"
_MAX = 255 * 32  # HKDF-SHA256 output limit per call


def derived_random(ikm: bytes, info: bytes, salt: bytes = REENCRYPT_SALT) -> RandomBytes:
    """A ``random_bytes(n)`` source: call ``i`` (from 0) returns HKDF-SHA256(ikm, salt,
    info || i as 4 octets, n)."""
    prk = hmac.digest(salt, ikm, "sha256")
    state = [0]

    def random_bytes(n: int) -> bytes:
        if not 0 <= n <= _MAX:
            raise ValueError(f"HKDF-SHA256 gives at most {_MAX} octets per call")
        label = info + state[0].to_bytes(4, "big")
        state[0] += 1
        out, block, i = b"", b"", 1
        while len(out) < n:
            block = hmac.digest(prk, block + label + bytes((i,)), "sha256")
            out += block
            i += 1
        return out[:n]

    return random_bytes


def _ikm(session_key: Any) -> bytes:
    return bytes((int(session_key.algorithm or 0),)) + bytes(session_key.key)


def pkesk_randomness(session_key: Any, salt: bytes = REENCRYPT_SALT) -> Callable[[Any], RandomBytes]:
    """``recipient -> random_bytes`` for the PKESKs of ``session_key`` (a :class:`SessionKey`): one
    derived source per recipient, keyed by its fingerprint."""
    ikm = _ikm(session_key)
    return lambda recipient: derived_random(ikm, bytes(recipient.fingerprint) + b"pkesk", salt)


def full_randomness(
    old_session_key: Any, recipients: Iterable[Any], payload: bytes, salt: bytes = REENCRYPT_SALT
) -> RandomBytes:
    """The source of a message encrypted afresh from one whose session key was ``old_session_key``:
    bound to the new recipients' fingerprints and the payload (two different payloads under one old
    session key never share a new session key and prefix)."""
    fprs = b"".join(bytes((len(r.fingerprint),)) + bytes(r.fingerprint) for r in recipients)
    info = b"full" + fprs + hashlib.sha256(payload).digest()
    return derived_random(_ikm(old_session_key), info, salt)


__all__ = ["REENCRYPT_SALT", "derived_random", "full_randomness", "pkesk_randomness"]
