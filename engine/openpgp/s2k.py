"""String-to-key specifiers (RFC 9580 section 3.7): simple, salted, iterated-salted, Argon2, GNU dummy."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from engine.errors import InvalidArgument, UnsupportedAlgorithm
from engine.openpgp.constants import HashAlgorithm, S2KType
from engine.openpgp.packet import BodyReader

_HASHLIB = {
    HashAlgorithm.MD5: "md5",
    HashAlgorithm.SHA1: "sha1",
    HashAlgorithm.SHA256: "sha256",
    HashAlgorithm.SHA384: "sha384",
    HashAlgorithm.SHA512: "sha512",
    HashAlgorithm.SHA224: "sha224",
    HashAlgorithm.SHA3_256: "sha3_256",
    HashAlgorithm.SHA3_512: "sha3_512",
}
MAX_ARGON2_MEMORY_EXPONENT = 22  # 4 GiB; larger values are refused rather than attempted


def decode_count(c: int) -> int:
    """Octet count of an iterated-salted S2K from its coded octet (section 3.7.1.3)."""
    return (16 + (c & 15)) << ((c >> 4) + 6)


def encode_count(count: int) -> int:
    """Smallest coded octet whose count is at least ``count`` (255 when above the maximum)."""
    for c in range(256):
        if decode_count(c) >= count:
            return c
    return 255


@dataclass(frozen=True)
class S2K:
    """A string-to-key specifier; ``coded_count`` for iterated, ``t``/``p``/``m`` for Argon2."""

    type: int
    hash: int = HashAlgorithm.SHA256
    salt: bytes = b""
    coded_count: int = 0
    t: int = 0
    p: int = 0
    m: int = 0
    gnu_mode: int = 0  # GNU dummy: 1001 no secret, 1002 on a smart card

    @classmethod
    def iterated(cls, hash: HashAlgorithm = HashAlgorithm.SHA256, count: int = 0x3E00000) -> S2K:
        """A fresh iterated-salted S2K (the gpg default is about 65 MB of hashing)."""
        return cls(S2KType.ITERATED_SALTED, hash, os.urandom(8), encode_count(count))

    @classmethod
    def argon2(cls, t: int = 1, p: int = 4, m: int = 21) -> S2K:
        """A fresh Argon2id S2K (RFC 9106 first recommended option: t=1, p=4, 2 GiB = m 21)."""
        return cls(S2KType.ARGON2, 0, os.urandom(16), t=t, p=p, m=m)

    @classmethod
    def read(cls, r: BodyReader) -> S2K:
        at = r.pos
        kind = r.u8("S2K type")
        if kind == S2KType.SIMPLE:
            return cls(kind, r.u8("S2K hash"))
        if kind == S2KType.SALTED:
            return cls(kind, r.u8("S2K hash"), r.take(8, "S2K salt"))
        if kind == S2KType.ITERATED_SALTED:
            return cls(kind, r.u8("S2K hash"), r.take(8, "S2K salt"), r.u8("S2K count"))
        if kind == S2KType.ARGON2:
            salt = r.take(16, "Argon2 salt")
            return cls(kind, 0, salt, t=r.u8("Argon2 t"), p=r.u8("Argon2 p"), m=r.u8("Argon2 m"))
        if kind == S2KType.GNU_DUMMY:
            halg = r.u8("S2K hash")
            if r.take(3, "GNU S2K marker") != b"GNU":
                raise r.fail("GNU S2K without its marker", at=at)
            return cls(kind, halg, gnu_mode=1000 + r.u8("GNU S2K mode"))
        raise UnsupportedAlgorithm(f"S2K type {kind} at byte {r.base + at}")

    def serialize(self) -> bytes:
        if self.type == S2KType.SIMPLE:
            return bytes((self.type, self.hash))
        if self.type == S2KType.SALTED:
            return bytes((self.type, self.hash)) + self.salt
        if self.type == S2KType.ITERATED_SALTED:
            return bytes((self.type, self.hash)) + self.salt + bytes((self.coded_count,))
        if self.type == S2KType.ARGON2:
            return bytes((self.type,)) + self.salt + bytes((self.t, self.p, self.m))
        return bytes((self.type, self.hash)) + b"GNU" + bytes((self.gnu_mode - 1000,))

    @property
    def has_secret(self) -> bool:
        """False for GNU dummy specifiers (secret absent or on a card)."""
        return self.type != S2KType.GNU_DUMMY

    def derive(self, passphrase: bytes | str, size: int) -> bytes:
        """Derive a ``size``-byte key from ``passphrase``."""
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        if self.type == S2KType.ARGON2:
            return self._argon2(passphrase, size)
        if self.type not in (S2KType.SIMPLE, S2KType.SALTED, S2KType.ITERATED_SALTED):
            raise UnsupportedAlgorithm(f"cannot derive a key with S2K type {self.type}")
        name = _HASHLIB.get(self.hash)  # type: ignore[call-overload]
        if name is None:
            raise UnsupportedAlgorithm(f"S2K hash algorithm {self.hash}")
        data = self.salt + passphrase
        count = decode_count(self.coded_count) if self.type == S2KType.ITERATED_SALTED else len(data)
        count = max(count, len(data))
        out = b""
        preload = 0
        while len(out) < size:  # section 3.7.1.1: more contexts, preloaded with zero octets
            h = hashlib.new(name, b"\x00" * preload)
            _feed_repeated(h, data, count)
            out += h.digest()
            preload += 1
        return out[:size]

    def _argon2(self, passphrase: bytes, size: int) -> bytes:
        try:
            from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
        except ImportError:  # cryptography < 44
            raise UnsupportedAlgorithm("Argon2 needs cryptography >= 44") from None
        if self.m > MAX_ARGON2_MEMORY_EXPONENT or self.m < 3 or self.p == 0 or self.t == 0:
            raise InvalidArgument(f"Argon2 parameters out of range (t={self.t} p={self.p} m={self.m})")
        memory = max(1 << self.m, 8 * self.p)
        kdf = Argon2id(salt=self.salt, length=size, iterations=self.t, lanes=self.p, memory_cost=memory)
        return kdf.derive(passphrase)


def _feed_repeated(h: hashlib._Hash, data: bytes, count: int) -> None:
    """Hash ``count`` octets of ``data`` repeated, in large blocks."""
    block = data * max(1, 65536 // len(data)) if data else b""
    while count >= len(block) > 0:
        h.update(block)
        count -= len(block)
    if count:
        h.update(block[:count])
