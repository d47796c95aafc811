"""AEAD modes by OpenPGP ID (RFC 9580 section 9.6): OCB and GCM from `cryptography`, EAX built here.

EAX (Bellare, Rogaway, Wagner) is CTR encryption keyed by an OMAC of the nonce plus three CMACs:
``tag = OMAC0(nonce) ^ OMAC1(header) ^ OMAC2(ciphertext)`` where ``OMACt(M) = CMAC(K, [t]_16 || M)``.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESOCB3
from cryptography.hazmat.primitives.cmac import CMAC

from engine.errors import UnsupportedAlgorithm
from engine.openpgp.constants import AEADAlgorithm, SymmetricAlgorithm


class Aead(Protocol):
    """The `cryptography` AEAD interface: ciphertext is ``sealed data || 16-octet tag``."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class AESEAX:
    """AES-EAX with 16-octet nonces and tags, same interface as `cryptography`'s AEAD classes."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _omac(self, t: int, data: bytes) -> bytes:
        mac = CMAC(algorithms.AES(self._key))
        mac.update(bytes(15) + bytes((t,)))
        mac.update(data)
        return mac.finalize()

    def _ctr(self, n: bytes, data: bytes) -> bytes:
        ctx = Cipher(algorithms.AES(self._key), modes.CTR(n)).encryptor()
        return ctx.update(data) + ctx.finalize()

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        n = self._omac(0, nonce)
        ct = self._ctr(n, data)
        tag = _xor3(n, self._omac(1, associated_data or b""), self._omac(2, ct))
        return ct + tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(data) < 16:
            raise InvalidTag()
        ct, tag = data[:-16], data[-16:]
        n = self._omac(0, nonce)
        want = _xor3(n, self._omac(1, associated_data or b""), self._omac(2, ct))
        if not hmac.compare_digest(want, tag):
            raise InvalidTag()
        return self._ctr(n, ct)


def _xor3(a: bytes, b: bytes, c: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big") ^ int.from_bytes(c, "big")).to_bytes(
        16, "big"
    )


def aead_for(mode: AEADAlgorithm, cipher: SymmetricAlgorithm, key: bytes) -> Aead:
    """An AEAD object for ``mode`` over ``cipher``; only AES is available for the AEAD modes."""
    if not cipher.is_aes:
        raise UnsupportedAlgorithm(f"AEAD {mode.name} with {cipher.name}")
    if mode is AEADAlgorithm.OCB:
        return AESOCB3(key)
    if mode is AEADAlgorithm.GCM:
        return AESGCM(key)
    if mode is AEADAlgorithm.EAX:
        return AESEAX(key)
    raise UnsupportedAlgorithm(f"AEAD mode {mode!r}")
