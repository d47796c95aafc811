"""Pure-Python twin of ``engine._pgpcrypto_c``: AES key wrap, AES-CFB with the SEIPD v1 MDC, ECDH PKESKs.

Same names, arguments, results and errors (ValueError) as the native kernel, built on `cryptography`
and hashlib; the tests run every case on both. AES only: the key size picks AES-128/192/256.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 47 keeps CFB among the decrepit modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB as _CFB  # type: ignore[assignment]

_IV = b"\xa6" * 8
_MDC_HEADER = b"\xd3\x14"
_MDC_LEN = 22
_BLOCK = 16


def features() -> dict:
    """What this implementation uses: ``{"native": False, "backend": "cryptography", "multi_buffer": False,
    "multi_hash": False}``."""
    return {"native": False, "backend": "cryptography", "multi_buffer": False, "multi_hash": False}


def _check_key(key: bytes, what: str = "key") -> None:
    if len(key) not in (16, 24, 32):
        raise ValueError(f"{what} must be an AES key of 16, 24 or 32 octets, got {len(key)}")


def _bytes(data: Any) -> bytes:
    return data if isinstance(data, bytes) else bytes(memoryview(data))


# --- SHA-1 and SHA-256 of many buffers -----------------------------------------------------------------


def sha1_many(items: Any) -> list[bytes]:
    """The SHA-1 digest of every bytes-like object of ``items``."""
    return [hashlib.sha1(item).digest() for item in items]


def sha256_many(items: Any) -> list[bytes]:
    """The SHA-256 digest of every bytes-like object of ``items``."""
    return [hashlib.sha256(item).digest() for item in items]


# --- AES key wrap (RFC 3394 section 2.2.1) ------------------------------------------------------------


def _xor_t(a: bytes, t: int) -> bytes:
    if t < 256:
        return a[:7] + bytes((a[7] ^ t,))
    return (int.from_bytes(a, "big") ^ t).to_bytes(8, "big")


def aes_key_wrap(kek: Any, key: Any) -> bytes:
    """RFC 3394 AES key wrap of ``key`` (a multiple of 8 octets, at least 16) under ``kek``."""
    kek, key = _bytes(kek), _bytes(key)
    _check_key(kek, "key-encryption key")
    if len(key) % 8 or len(key) < 16 or len(key) > 1 << 20:
        raise ValueError("the key to wrap must be a multiple of 8 octets, at least 16")
    enc = Cipher(algorithms.AES(kek), modes.ECB()).encryptor().update
    n = len(key) // 8
    a, r = _IV, [key[i : i + 8] for i in range(0, len(key), 8)]
    t = 0
    for _ in range(6):
        for i in range(n):
            t += 1
            b = enc(a + r[i])
            a, r[i] = _xor_t(b[:8], t), b[8:]
    return a + b"".join(r)


def aes_key_unwrap(kek: Any, wrapped: Any) -> bytes:
    """RFC 3394 AES key unwrap; ValueError when the integrity check fails."""
    kek, wrapped = _bytes(kek), _bytes(wrapped)
    _check_key(kek, "key-encryption key")
    if len(wrapped) % 8 or len(wrapped) < 24 or len(wrapped) > 1 << 20:
        raise ValueError("a wrapped key must be a multiple of 8 octets, at least 24")
    dec = Cipher(algorithms.AES(kek), modes.ECB()).decryptor().update
    n = len(wrapped) // 8 - 1
    a, r = wrapped[:8], [wrapped[i : i + 8] for i in range(8, len(wrapped), 8)]
    t = 6 * n
    for _ in range(6):
        for i in range(n - 1, -1, -1):
            b = dec(_xor_t(a, t) + r[i])
            t -= 1
            a, r[i] = b[:8], b[8:]
    if not hmac.compare_digest(a, _IV):
        raise ValueError("AES key unwrap: integrity check failed")
    return b"".join(r)


# --- legacy ECDH PKESKs on Curve25519 (RFC 9580 section 11.5) ----------------------------------------

_KDF_HASHES = {8: hashlib.sha256, 9: hashlib.sha384, 10: hashlib.sha512}


def _ecdh25519_pkesk(
    recipient: bytes, param: bytes, head: bytes, kdf_hash: int, kek_size: int, cipher: int | None, key: bytes,
    secret: bytes,
) -> bytes:  # fmt: skip
    from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base

    from engine.openpgp.ecdh import session_key_frame
    from engine.openpgp.packet import packet_header

    if len(secret) != 32:
        raise ValueError("an X25519 ephemeral secret is 32 octets")
    if not 1 <= len(key) <= 200:
        raise ValueError("session key size out of range")
    try:
        shared = crypto_scalarmult(secret, recipient)
    except Exception:  # nacl.exceptions.RuntimeError: the all-zero output of a low-order point
        raise ValueError("X25519 key agreement failed: all-zero shared secret") from None
    kek = _KDF_HASHES[kdf_hash](b"\x00\x00\x00\x01" + shared + param).digest()[:kek_size]
    wrapped = aes_key_wrap(kek, session_key_frame(key, cipher))
    body = head + b"\x01\x07\x40" + crypto_scalarmult_base(secret) + bytes((len(wrapped),)) + wrapped
    return packet_header(1, len(body)) + body


def ecdh25519_pkesks(
    recipient: Any,
    param: Any,
    head: Any,
    kdf_hash: int,
    kek_size: int,
    cipher: int | None,
    keys: Any,
    secrets: Any,
) -> list[bytes]:
    """One PKESK packet of legacy ECDH on Curve25519 (RFC 9580 section 11.5) per session key of ``keys``.

    Each with its own ephemeral X25519 secret from ``secrets`` (32 octets each, one per key) agreed
    with ``recipient`` (its raw 32-octet public key); the KEK is ``Hash(00 00 00 01 || Z || param)``
    (``kdf_hash``: 8, 9 or 10 for SHA-256/384/512) cut to ``kek_size`` octets; the wrapped frame is
    ``[cipher] key checksum`` PKCS#5-padded (``cipher`` None: no cipher octet, as in a v6 PKESK).
    ``head`` is the packet body up to its algorithm octet. ValueError on bad sizes or a low-order
    ``recipient`` (an all-zero shared secret)."""
    recipient, param, head = _bytes(recipient), _bytes(param), _bytes(head)
    keys, secrets = [_bytes(k) for k in keys], [_bytes(s) for s in secrets]
    if len(recipient) != 32:
        raise ValueError("an X25519 public key is 32 octets")
    if len(keys) != len(secrets):
        raise ValueError("one ephemeral secret per session key")
    if (
        kdf_hash not in _KDF_HASHES
        or kek_size not in (16, 24, 32)
        or (cipher is not None and not 0 <= cipher <= 255)
    ):
        raise ValueError("unsupported ECDH KDF hash, key-wrap key size or cipher")
    if len(param) > 256 or len(head) > 64:
        raise ValueError("ECDH parameter string or PKESK head too long")
    return [
        _ecdh25519_pkesk(recipient, param, head, kdf_hash, kek_size, cipher, k, s)
        for k, s in zip(keys, secrets, strict=True)
    ]


# --- CFB with MDC (SEIPD v1, RFC 9580 section 5.13.1) ---------------------------------------------------


def _cfb(key: bytes, iv: bytes | None = None, decrypt: bool = False) -> Any:
    _check_key(key)
    cipher = Cipher(algorithms.AES(key), _CFB(iv if iv is not None else bytes(_BLOCK)))
    return cipher.decryptor() if decrypt else cipher.encryptor()


def _prefix18(prefix: Any) -> bytes:
    prefix = _bytes(prefix)
    if len(prefix) != _BLOCK:
        raise ValueError(f"the random prefix must be one 16-octet block, got {len(prefix)}")
    return prefix + prefix[-2:]


class MdcEncryptor:
    """Streaming SEIPD v1 body writer (AES): ``header()``, ``update(data)`` per piece, ``finalize()``."""

    def __init__(self, key: Any, prefix: Any) -> None:
        self._prefix = _prefix18(prefix)
        self._ctx = _cfb(_bytes(key))
        self._sha1 = hashlib.sha1(self._prefix)

    def header(self) -> bytes:
        """The version octet and the encrypted prefix."""
        return b"\x01" + self._ctx.update(self._prefix)

    def update(self, data: Any) -> bytes:
        """Hash and encrypt one piece of the inner packet stream."""
        self._sha1.update(data)
        return self._ctx.update(data)

    def update_into(self, data: Any, out: Any) -> None:
        """``update`` writing into the writable buffer ``out`` (at least as long; may be ``data``)."""
        n = len(memoryview(data))
        if len(memoryview(out)) < n:
            raise ValueError("output buffer is shorter than the data")
        memoryview(out).cast("B")[:n] = self.update(bytes(memoryview(data)))

    def finalize(self) -> bytes:
        """The encrypted MDC packet; the object is spent afterwards."""
        self._sha1.update(_MDC_HEADER)
        return self._ctx.update(_MDC_HEADER + self._sha1.digest()) + self._ctx.finalize()


def cfb_encrypt_mdc(key: Any, prefix: Any, plaintext: Any, head: Any = b"", lead: Any = b"") -> bytes:
    """``lead || 01 || CFB(prefix || prefix[-2:] || head || plaintext || D3 14 || SHA-1)`` in one pass."""
    enc = MdcEncryptor(key, prefix)
    return b"".join(
        (_bytes(lead), enc.header(), enc.update(_bytes(head)), enc.update(plaintext), enc.finalize())
    )


def cfb_encrypt_mdc_many(items: Any) -> list[bytes]:
    """:func:`cfb_encrypt_mdc` of every ``(key, prefix, plaintext, head, lead)`` of ``items``."""
    return [cfb_encrypt_mdc(*item) for item in items]


def cfb_decrypt_mdc(key: Any, ciphertext: Any) -> bytes:
    """Decrypt a SEIPD v1 body after its version octet and verify its MDC: returns the data between the
    prefix and the MDC packet, or raises ValueError (too short, bad MDC) without returning any of it."""
    ciphertext = _bytes(ciphertext)
    if len(ciphertext) < _BLOCK + 2 + _MDC_LEN:
        raise ValueError("SEIPD v1 body shorter than its prefix and MDC")
    ctx = _cfb(_bytes(key), decrypt=True)
    plain = ctx.update(ciphertext) + ctx.finalize()
    digest = hashlib.sha1(memoryview(plain)[: -_MDC_LEN + 2]).digest()
    mdc = plain[-_MDC_LEN:]
    ok = hmac.compare_digest(digest, mdc[2:])
    if not ok or mdc[:2] != _MDC_HEADER:
        raise ValueError("SEIPD v1: modification detection code does not match")
    return plain[_BLOCK + 2 : -_MDC_LEN]


class AesCfb:
    """Plain AES-CFB128 stream (zero IV unless given), the `cryptography` context interface."""

    def __init__(self, key: Any, iv: Any = None, decrypt: bool = False) -> None:
        if iv is not None and len(_bytes(iv)) != _BLOCK:
            raise ValueError("the CFB IV must be 16 octets")
        self._ctx = _cfb(_bytes(key), None if iv is None else _bytes(iv), decrypt)

    def update(self, data: Any) -> bytes:
        return self._ctx.update(data)

    def finalize(self) -> bytes:
        return self._ctx.finalize()
