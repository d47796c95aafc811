"""Fast WKD selection straight from a certificate's packets, verifying only the signatures it needs.

The reference path (:func:`engine.wkd.build.select_cert`) reads a full :class:`engine.openpgp.keys.Cert`,
which parses and verifies every signature. Publishing needs far less: the self-signatures of the User
IDs in the chosen domains (newest first, stopping at the first that verifies), the newest binding of
each subkey, and revocations and direct-key signatures (rare). User IDs of other domains are not even
parsed. Hash contexts start from a cached copy holding the primary key, and Ed25519 goes through
libsodium (PyNaCl) when installed, about twice as fast as OpenSSL's.

The rules are the reference's, one for one; a test runs both paths on the same keyrings. Anything off
the common road (v3/v6 packets or signatures, algorithms other than RSA and Ed25519, malformed
packets) raises :class:`Unusual` and the caller falls back to the reference path. The output bytes are
the input packets' bodies under new-format headers, as ``Cert.minimal`` writes them.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from engine.openpgp.constants import HashAlgorithm, PublicKeyAlgorithm, RevocationReason
from engine.openpgp.packet import write_packet
from engine.openpgp.public_key import PublicKey, RSAMaterial
from engine.openpgp.reader import BodyReader
from engine.openpgp.signature import _KNOWN_SUBPACKETS

try:  # libsodium: Ed25519 verification about twice as fast as OpenSSL's
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import BadSignatureError as _SodiumBad
except ImportError:  # pragma: no cover - optional
    _sodium_open = None

__all__ = ["LeanCert", "Unusual", "parse_packets"]

A = PublicKeyAlgorithm
_HASHES = {HashAlgorithm.SHA256: "sha256", HashAlgorithm.SHA512: "sha512", HashAlgorithm.SHA384: "sha384"}
_HASHES.update({HashAlgorithm.SHA224: "sha224", HashAlgorithm.SHA1: "sha1"})
_CRYPTO_HASH = {h: HashAlgorithm(h).crypto_hash() for h in _HASHES}
_SOFT = (RevocationReason.SUPERSEDED, RevocationReason.RETIRED, RevocationReason.USER_ID_INVALID)
_PUBKEY, _SIG, _UID, _SUBKEY, _ATTR = 6, 2, 13, 14, 17


class Unusual(Exception):
    """The lean path does not handle this certificate: use the reference path."""


def parse_packets(data: bytes) -> list[tuple[int, bytes]]:
    """``(tag, body)`` of each packet; :class:`Unusual` on anything but definite lengths."""
    out, pos, end = [], 0, len(data)
    while pos < end:
        first = data[pos]
        if first & 0xC0 == 0xC0:
            tag, o1 = first & 0x3F, data[pos + 1] if pos + 1 < end else -1
            if 0 <= o1 < 192:
                size, pos = o1, pos + 2
            elif 192 <= o1 < 224 and pos + 2 < end:
                size, pos = ((o1 - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif o1 == 255 and pos + 5 < end:
                size, pos = int.from_bytes(data[pos + 2 : pos + 6], "big"), pos + 6
            else:
                raise Unusual("packet header")
        elif first & 0x80 and first & 3 != 3:
            n = 1 << (first & 3)
            tag, size, pos = (
                (first >> 2) & 0x0F,
                int.from_bytes(data[pos + 1 : pos + 1 + n], "big"),
                pos + 1 + n,
            )
        else:
            raise Unusual("packet header")
        if pos + size > end:
            raise Unusual("truncated packet")
        out.append((tag, data[pos : pos + size]))
        pos += size
    return out


class Sig:
    """The fields of a v4 signature that selection reads, and its verification state."""

    __slots__ = (
        "algo", "body", "created", "critical", "expires", "fpr", "halg", "hashed_end", "key_exp", "kid",
        "left16", "material", "ok", "primary", "reason", "type",
    )  # fmt: skip

    def __init__(self, body: bytes) -> None:
        if len(body) < 10 or body[0] != 4:
            raise Unusual("signature version")
        self.body, self.type, self.algo, self.halg = body, body[1], body[2], body[3]
        self.ok: bool | None = None
        self.created = self.expires = 0
        self.key_exp: int | None = None
        self.primary, self.critical = False, False
        self.reason: int | None = None
        self.fpr = self.kid = None
        hlen = int.from_bytes(body[4:6], "big")
        self.hashed_end = 6 + hlen
        self._area(6, self.hashed_end, True)
        ulen = int.from_bytes(body[self.hashed_end : self.hashed_end + 2], "big")
        uend = self.hashed_end + 2 + ulen
        if uend + 2 > len(body):
            raise Unusual("signature truncated")
        self._area(self.hashed_end + 2, uend, False)
        self.left16, self.material = body[uend : uend + 2], body[uend + 2 :]

    def _area(self, pos: int, end: int, hashed: bool) -> None:
        body = self.body
        if end > len(body):
            raise Unusual("signature truncated")
        while pos < end:
            o1 = body[pos]
            if o1 < 192:
                size, pos = o1, pos + 1
            elif o1 < 255:
                size, pos = ((o1 - 192) << 8) + body[pos + 1] + 192, pos + 2
            else:
                size, pos = int.from_bytes(body[pos + 1 : pos + 5], "big"), pos + 5
            if size == 0 or pos + size > end:
                raise Unusual("subpacket length")
            t, data = body[pos] & 0x7F, body[pos + 1 : pos + size]
            pos += size
            if hashed:
                if body[pos - size] & 0x80 and t not in _KNOWN_SUBPACKETS:
                    self.critical = True
                if t == 2 and len(data) == 4 and not self.created:
                    self.created = int.from_bytes(data, "big")
                elif t == 3 and len(data) == 4 and not self.expires:
                    self.expires = int.from_bytes(data, "big")
                elif t == 9 and len(data) == 4 and self.key_exp is None:
                    self.key_exp = int.from_bytes(data, "big")
                elif t == 25 and not self.primary and data:
                    self.primary = bool(data[0])
                elif t == 29 and data and self.reason is None:
                    self.reason = data[0]
            if t == 33 and self.fpr is None and len(data) > 1:
                self.fpr = data[1:]
            elif t == 16 and self.kid is None and len(data) == 8:
                self.kid = data

    def live(self, at: int) -> bool:
        return self.created <= at and not (self.expires and at >= self.created + self.expires)


class LeanCert:
    """A v4 certificate as packets, with signatures verified on demand (see the module docstring)."""

    def __init__(self, data: bytes) -> None:
        packets = parse_packets(data)
        if not packets or packets[0][0] != _PUBKEY:
            raise Unusual("no primary key")
        body = packets[0][1]
        if body[:1] != b"\x04":
            raise Unusual("key version")
        self.primary = PublicKey.read(BodyReader(body, what="public key"), False)
        if self.primary.algorithm not in (A.RSA, A.RSA_SIGN_ONLY, A.EDDSA_LEGACY):
            raise Unusual("key algorithm")
        self.created = self.primary.created
        self.key_packet = write_packet(_PUBKEY, body)
        self.prefix = b"\x99" + len(body).to_bytes(2, "big") + body
        self._ctx: dict[int, Any] = {}
        self._pub: Any = None
        self.seconds_verify = 0.0
        other: list[bytes] = []
        self.uids: list[tuple[bytes, list[bytes]]] = []  # (User ID body, raw signature bodies)
        self.subkeys: list[tuple[bytes, list[bytes]]] = []
        target = other
        for tag, b in packets[1:]:
            if tag == _SIG:
                target.append(b)
            elif tag == _UID:
                self.uids.append((b, []))
                target = self.uids[-1][1]
            elif tag == _SUBKEY:
                self.subkeys.append((b, []))
                target = self.subkeys[-1][1]
            elif tag == _ATTR:
                target = []
            else:
                raise Unusual(f"packet tag {tag}")
        self.other = [Sig(b) for b in other]

    # -- verification ---------------------------------------------------------------------------
    def _issued(self, s: Sig) -> bool:
        fpr = self.primary.fingerprint
        if s.fpr is not None:
            return s.fpr == fpr
        return s.kid is None or s.kid == fpr[-8:]

    def verify(self, s: Sig, data: bytes) -> bool:
        """Is ``s`` a valid signature by the primary key over ``prefix + data`` (memoized)?"""
        if s.ok is None:
            t = time.perf_counter()
            s.ok = not s.critical and self._issued(s) and self._check(s, data)
            self.seconds_verify += time.perf_counter() - t
        return s.ok

    def _check(self, s: Sig, data: bytes) -> bool:
        if s.halg not in _HASHES:
            raise Unusual(f"hash algorithm {s.halg}")
        if s.algo != self.primary.algorithm:
            return False
        base = self._ctx.get(s.halg)
        if base is None:
            base = self._ctx[s.halg] = hashlib.new(_HASHES[s.halg], self.prefix)
        h = base.copy()
        hashed = s.body[: s.hashed_end]
        h.update(data)
        h.update(hashed)
        h.update(b"\x04\xff" + len(hashed).to_bytes(4, "big"))
        digest = h.digest()
        if digest[:2] != s.left16:
            return False
        try:
            return self._raw_verify(s, digest)
        except (InvalidSignature, ValueError, IndexError):
            return False

    def _raw_verify(self, s: Sig, digest: bytes) -> bool:
        m = s.material
        if self.primary.algorithm == A.EDDSA_LEGACY:
            r, rest = _mpi(m, 0)
            sv, end = _mpi(m, rest)
            if end != len(m) or len(r) > 32 or len(sv) > 32:
                return False
            sig = r.rjust(32, b"\x00") + sv.rjust(32, b"\x00")
            point = self.primary.material.point  # type: ignore[union-attr]
            if _sodium_open is not None and len(point) == 33:
                try:
                    _sodium_open(sig + digest, point[1:])
                    return True
                except _SodiumBad:
                    return False
            self._key().verify(sig, digest)
            return True
        value, end = _mpi(m, 0)
        if end != len(m):
            return False
        mat = self.primary.material
        assert isinstance(mat, RSAMaterial)
        size = (mat.n.bit_length() + 7) // 8
        self._key().verify(
            value.rjust(size, b"\x00"), digest, padding.PKCS1v15(), Prehashed(_CRYPTO_HASH[s.halg])
        )
        return True

    def _key(self) -> Any:
        if self._pub is None:
            self._pub = self.primary.to_crypto()
        return self._pub


def _mpi(m: bytes, pos: int) -> tuple[bytes, int]:
    bits = int.from_bytes(m[pos : pos + 2], "big")
    end = pos + 2 + (bits + 7) // 8
    if end > len(m):
        raise ValueError("MPI truncated")
    return m[pos + 2 : end], end


def revoked_at(revs: list[Sig], at: int) -> bool:
    """Hard revocations apply always, soft ones from their creation (as ``engine.openpgp.keys``)."""
    return any(s.reason is None or s.reason not in _SOFT or s.created <= at for s in revs)


def certification_suffix(uid: bytes) -> bytes:
    return b"\xb4" + len(uid).to_bytes(4, "big") + uid


def binding_suffix(sub: bytes) -> bytes:
    return b"\x99" + len(sub).to_bytes(2, "big") + sub
