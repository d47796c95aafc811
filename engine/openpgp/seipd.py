"""Symmetrically Encrypted and Integrity Protected Data, tag 18 (RFC 9580 section 5.13), and legacy SED.

v1: ``01 || CFB(prefix || data || D3 14 || SHA-1(prefix || data || D3 14))`` where the prefix is one
random block with its last two octets repeated. OpenPGP CFB without resynchronisation is exactly
standard CFB with an all-zero IV over the whole stream, so one `cryptography` CFB context does it.

v2: ``02 || cipher || aead || chunk-size octet || salt(32) || chunks || final tag``; HKDF-SHA256 over the
session key with the salt and the five header octets as info gives the message key and the IV. Every
chunk is AEAD-sealed with nonce ``IV || chunk index (8 octets)`` and the header as associated data; the
final tag seals nothing with the total plaintext length appended to the associated data.

Encryptors and decryptors here are push-style (``update`` / ``finalize``) so they compose with any
packet framing and run in constant memory. A decryptor hands out plaintext that is **not yet
verified**; the message layer decides when to release it (see ``engine.openpgp.message``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import CipherContext
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine._native import kernel
from engine.errors import IntegrityError, MalformedPacket, UnsupportedAlgorithm
from engine.openpgp.aead import aead_for
from engine.openpgp.constants import AEADAlgorithm, SymmetricAlgorithm
from engine.openpgp.symmetric import cfb_decryptor, cfb_encryptor, check_key

SEIPD_TAG_OCTET = 0xD2  # new-format header octet of tag 18, first octet of the v2 associated data
_MDC_HEADER = b"\xd3\x14"
_MDC_LEN = 22
DEFAULT_CHUNK_OCTET = 12  # 2**(12+6) = 256 KiB chunks
MAX_CHUNK_OCTET = 16  # RFC 9580 section 5.13.2: chunk size octet must be at most 16


# --- v1 (CFB + MDC) -------------------------------------------------------------------------------------


class _LegacyV1Encryptor:
    """SEIPD v1 writer for the non-AES ciphers on `cryptography` (AES runs on the kernel)."""

    def __init__(self, key: bytes, cipher: SymmetricAlgorithm, prefix: bytes) -> None:
        self._prefix = prefix + prefix[-2:]
        self._ctx: CipherContext = cfb_encryptor(cipher, key)
        self._sha1 = hashlib.sha1(self._prefix)

    def header(self) -> bytes:
        return b"\x01" + self._ctx.update(self._prefix)

    def update(self, data: bytes) -> bytes:
        self._sha1.update(data)
        return self._ctx.update(data)

    def finalize(self) -> bytes:
        self._sha1.update(_MDC_HEADER)
        return self._ctx.update(_MDC_HEADER + self._sha1.digest()) + self._ctx.finalize()


class V1Encryptor:
    """Streaming SEIPD v1 body writer: ``header()``, then ``update()`` per piece, then ``finalize()``.

    AES runs on the ``pgpcrypto`` kernel (SHA-1 and CFB in one pass); other ciphers on `cryptography`.
    """

    def __init__(self, key: bytes, cipher: SymmetricAlgorithm, prefix: bytes | None = None) -> None:
        check_key(cipher, key)
        prefix = prefix if prefix is not None else os.urandom(cipher.block_size)
        if cipher.is_aes:
            self._enc = kernel("pgpcrypto").MdcEncryptor(key, prefix)
        else:
            self._enc = _LegacyV1Encryptor(key, cipher, prefix)

    def header(self) -> bytes:
        """The version octet and the encrypted prefix."""
        return self._enc.header()

    def update(self, data: bytes) -> bytes:
        return self._enc.update(data)

    def update_into(self, data: bytes | memoryview, out: bytearray | memoryview) -> None:
        """``update`` into the writable buffer ``out`` (may be ``data``: encryption in place)."""
        if isinstance(self._enc, _LegacyV1Encryptor):
            n = len(data)
            out[:n] = self._enc.update(bytes(data))
        else:
            self._enc.update_into(data, out)

    def finalize(self) -> bytes:
        """Encrypt the MDC packet and close the cipher."""
        return self._enc.finalize()


def seal_v1(
    key: bytes,
    cipher: SymmetricAlgorithm,
    plaintext: bytes,
    head: bytes = b"",
    lead: bytes = b"",
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """``lead`` then the whole SEIPD v1 body for ``head || plaintext`` (the inner packet stream).

    The random prefix is ``random_bytes(block size)``."""
    if cipher.is_aes and len(key) == cipher.key_size:
        return kernel("pgpcrypto").cfb_encrypt_mdc(key, random_bytes(16), plaintext, head, lead)
    enc = V1Encryptor(key, cipher, random_bytes(cipher.block_size))
    return b"".join((lead, enc.header(), enc.update(head), enc.update(plaintext), enc.finalize()))


def seal_v1_many(items: Sequence[tuple[bytes, SymmetricAlgorithm, bytes, bytes, bytes, bytes]]) -> list[bytes]:
    """:func:`seal_v1` of every ``(key, cipher, plaintext, head, lead, prefix)`` with an AES cipher, same
    bytes; ``prefix`` is the random 16-octet prefix. The messages are encrypted side by side (the native
    kernel interleaves their CFB chains); other ciphers go message by message through :func:`seal_v1`."""
    for key, cipher, *_ in items:
        if not cipher.is_aes:
            raise UnsupportedAlgorithm(f"seal_v1_many takes AES only, not {cipher.name}")
        check_key(cipher, key)
    return kernel("pgpcrypto").cfb_encrypt_mdc_many(
        [(key, prefix, plaintext, head, lead) for key, _, plaintext, head, lead, prefix in items]
    )


class V1Decryptor:
    """Streaming SEIPD v1 body reader; ``update`` returns unverified plaintext, ``finalize`` checks the MDC.

    The body passed in starts with the version octet. The trailing 22 octets (the MDC packet) are held
    back and never returned.
    """

    def __init__(self, key: bytes, cipher: SymmetricAlgorithm) -> None:
        check_key(cipher, key)
        if cipher.is_aes:
            self._ctx: CipherContext = kernel("pgpcrypto").AesCfb(key, None, True)
        else:
            self._ctx = cfb_decryptor(cipher, key)
        self._sha1 = hashlib.sha1()
        self._prefix_left = cipher.block_size + 2
        self._version_seen = False
        self._tail = b""

    def update(self, data: bytes) -> bytes:
        if not self._version_seen and data:
            if data[0] != 1:
                raise MalformedPacket(f"SEIPD version {data[0]} where 1 was expected", offset=0)
            self._version_seen = True
            data = data[1:]
        plain = self._tail + self._ctx.update(data)
        if self._prefix_left:
            take = min(self._prefix_left, len(plain))
            self._sha1.update(plain[:take])
            self._prefix_left -= take
            plain = plain[take:]
        if len(plain) <= _MDC_LEN:
            self._tail = plain
            return b""
        self._tail = plain[-_MDC_LEN:]
        out = plain[:-_MDC_LEN]
        self._sha1.update(out)
        return out

    def finalize(self) -> None:
        """Raise IntegrityError unless the body ended with a valid MDC packet."""
        tail = self._tail + self._ctx.finalize()
        if self._prefix_left or len(tail) != _MDC_LEN or tail[:2] != _MDC_HEADER:
            raise IntegrityError("SEIPD v1: missing or malformed modification detection code")
        self._sha1.update(_MDC_HEADER)
        if not hmac.compare_digest(self._sha1.digest(), tail[2:]):
            raise IntegrityError("SEIPD v1: modification detection code does not match")


def open_v1(key: bytes, cipher: SymmetricAlgorithm, body: bytes | memoryview) -> bytes:
    """Decrypt and verify a whole SEIPD v1 body; IntegrityError before any plaintext is returned."""
    if cipher.is_aes and len(body) and body[0] == 1:
        check_key(cipher, key)
        try:
            return kernel("pgpcrypto").cfb_decrypt_mdc(key, memoryview(body)[1:])
        except ValueError:
            raise IntegrityError("SEIPD v1: missing or mismatching modification detection code") from None
    dec = V1Decryptor(key, cipher)
    out = dec.update(body)
    dec.finalize()
    return out


def quick_check_v1(key: bytes, cipher: SymmetricAlgorithm, body: bytes | memoryview) -> bool:
    """True when the prefix's last two octets repeat (RFC 9580 section 5.13.1): a cheap session key test.

    Used only where we own the key (re-wrap); never to answer a decryption oracle.
    """
    bs = cipher.block_size
    if len(body) < bs + 3:
        return False
    ctx = kernel("pgpcrypto").AesCfb(key, None, True) if cipher.is_aes else cfb_decryptor(cipher, key)
    head = ctx.update(bytes(body[1 : bs + 3]))
    return head[bs - 2 : bs] == head[bs : bs + 2]


def open_sed(key: bytes, cipher: SymmetricAlgorithm, body: bytes) -> bytes:
    """Decrypt a legacy SED (tag 9) body: OpenPGP CFB with resync after the prefix; no integrity at all."""
    check_key(cipher, key)
    bs = cipher.block_size
    if len(body) < bs + 2:
        raise MalformedPacket("SED body shorter than its prefix", 0)
    head = cfb_decryptor(cipher, key).update(body[: bs + 2])
    if head[bs - 2 : bs] != head[bs : bs + 2]:
        raise IntegrityError("SED: quick check failed (wrong key or corrupt data)")
    # Resync: the IV for the rest is the ciphertext block just before it (RFC 4880 section 13.9 step 11).
    ctx = cfb_decryptor(cipher, key, iv=body[2 : bs + 2])
    return ctx.update(body[bs + 2 :]) + ctx.finalize()


# --- v2 (chunked AEAD) ----------------------------------------------------------------------------------


def _v2_keys(
    key: bytes, cipher: SymmetricAlgorithm, aead: AEADAlgorithm, chunk_octet: int, salt: bytes
) -> tuple[bytes, bytes, bytes]:
    """(message key, IV, header/associated data) per RFC 9580 section 5.13.2."""
    ad = bytes((SEIPD_TAG_OCTET, 2, cipher, aead, chunk_octet))
    iv_len = aead.nonce_size - 8
    okm = HKDF(hashes.SHA256(), cipher.key_size + iv_len, salt=salt, info=ad).derive(key)
    return okm[: cipher.key_size], okm[cipher.key_size :], ad


class V2Encryptor:
    """Streaming SEIPD v2 body writer; same protocol as :class:`V1Encryptor`."""

    def __init__(
        self,
        key: bytes,
        cipher: SymmetricAlgorithm,
        aead: AEADAlgorithm = AEADAlgorithm.OCB,
        chunk_octet: int = DEFAULT_CHUNK_OCTET,
        salt: bytes | None = None,
    ) -> None:
        check_key(cipher, key)
        if not 0 <= chunk_octet <= MAX_CHUNK_OCTET:
            raise UnsupportedAlgorithm(f"chunk size octet {chunk_octet}")
        self._salt = salt if salt is not None else os.urandom(32)
        mkey, self._iv, self._ad = _v2_keys(key, cipher, aead, chunk_octet, self._salt)
        self._aead = aead_for(aead, cipher, mkey)
        self._chunk = 1 << (chunk_octet + 6)
        self._buf = bytearray()
        self._index = 0
        self._total = 0

    def header(self) -> bytes:
        return self._ad[1:] + self._salt

    def _seal(self, data: bytes) -> bytes:
        nonce = self._iv + self._index.to_bytes(8, "big")
        self._index += 1
        self._total += len(data)
        return self._aead.encrypt(nonce, data, self._ad)

    def update(self, data: bytes) -> bytes:
        if not self._buf and len(data) < self._chunk:
            self._buf += data
            return b""
        self._buf += data
        out = []
        view = memoryview(self._buf)
        pos = 0
        while len(self._buf) - pos >= self._chunk:
            out.append(self._seal(bytes(view[pos : pos + self._chunk])))
            pos += self._chunk
        view.release()
        del self._buf[:pos]
        return b"".join(out)

    def finalize(self) -> bytes:
        """Seal the last (short) chunk, if any, and the final tag."""
        last = self._seal(bytes(self._buf)) if self._buf else b""
        self._buf.clear()
        nonce = self._iv + self._index.to_bytes(8, "big")
        return last + self._aead.encrypt(nonce, b"", self._ad + self._total.to_bytes(8, "big"))


def seal_v2(
    key: bytes,
    cipher: SymmetricAlgorithm,
    plaintext: bytes,
    aead: AEADAlgorithm = AEADAlgorithm.OCB,
    chunk_octet: int = DEFAULT_CHUNK_OCTET,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """The whole SEIPD v2 body for ``plaintext`` in one go; the salt is ``random_bytes(32)``."""
    enc = V2Encryptor(key, cipher, aead, chunk_octet, random_bytes(32))
    return enc.header() + enc.update(plaintext) + enc.finalize()


class V2Decryptor:
    """Streaming SEIPD v2 body reader. ``update`` returns plaintext of chunks whose tag verified;
    ``finalize`` checks the final tag (which also detects truncation). ``key`` is the session key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._head = bytearray()
        self._buf = bytearray()
        self._aead = None
        self._index = 0
        self._total = 0
        self.cipher: SymmetricAlgorithm | None = None
        self.aead: AEADAlgorithm | None = None

    def _start(self) -> None:
        version, cipher, aead, chunk_octet = self._head[:4]
        if version != 2:
            raise MalformedPacket(f"SEIPD version {version} where 2 was expected", offset=0)
        try:
            self.cipher, self.aead = SymmetricAlgorithm(cipher), AEADAlgorithm(aead)
        except ValueError:
            raise UnsupportedAlgorithm(f"SEIPD v2 cipher {cipher} / AEAD {aead}") from None
        if chunk_octet > MAX_CHUNK_OCTET:
            raise MalformedPacket(f"SEIPD v2 chunk size octet {chunk_octet} > 16", offset=3)
        check_key(self.cipher, self._key)
        mkey, self._iv, self._ad = _v2_keys(
            self._key, self.cipher, self.aead, chunk_octet, bytes(self._head[4:36])
        )
        self._aead = aead_for(self.aead, self.cipher, mkey)
        self._step = (1 << (chunk_octet + 6)) + 16

    def _open(self, chunk: bytes, ad: bytes) -> bytes:
        nonce = self._iv + self._index.to_bytes(8, "big")
        try:
            plain = self._aead.decrypt(nonce, chunk, ad)  # type: ignore[union-attr]
        except InvalidTag:
            raise IntegrityError(
                f"SEIPD v2: authentication tag of chunk {self._index} does not verify"
            ) from None
        self._index += 1
        return plain

    def update(self, data: bytes) -> bytes:
        if self._aead is None:
            need = 36 - len(self._head)
            self._head += data[:need]
            data = data[need:]
            if len(self._head) < 36:
                return b""
            self._start()
        self._buf += data
        out = []
        pos = 0
        # Keep the last 16 octets back: they may be the final tag.
        while len(self._buf) - pos >= self._step + 16:
            plain = self._open(bytes(self._buf[pos : pos + self._step]), self._ad)
            self._total += len(plain)
            out.append(plain)
            pos += self._step
        del self._buf[:pos]
        return b"".join(out)

    def finalize(self) -> bytes:
        """Open the last chunk and verify the final tag; IntegrityError on any failure."""
        if self._aead is None or len(self._buf) < 16:
            raise IntegrityError("SEIPD v2: body truncated before the final tag")
        rest, final = bytes(self._buf[:-16]), bytes(self._buf[-16:])
        out = b""
        if rest:
            if len(rest) < 16:
                raise IntegrityError("SEIPD v2: truncated chunk")
            out = self._open(rest, self._ad)
            self._total += len(out)
        self._open(final, self._ad + self._total.to_bytes(8, "big"))
        return out


def open_v2(key: bytes, body: bytes) -> bytes:
    """Decrypt and verify a whole SEIPD v2 body; IntegrityError before any plaintext is returned."""
    dec = V2Decryptor(key)
    head = dec.update(body)
    return head + dec.finalize()
