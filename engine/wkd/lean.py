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

The byte scanning (packets, signature subpackets, the shape check of RSA and Ed25519 primary keys and
of subkeys) runs in the ``wkdsel`` kernel (``engine._wkdsel_c``, twin ``engine._wkdsel_py``). The most
common certificates skip this class altogether: :func:`engine.wkd.lean_select.select_fast` takes them
from one kernel call (``plain_cert``: digests, issuer and left-16 checks, addresses, output packets) and
does only the public-key operations (the kernel's ``rsa_verify`` for RSA, on OpenSSL's libcrypto).
"""

from __future__ import annotations

import hashlib
from time import perf_counter as _clock
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from engine import _native
from engine.errors import MalformedPacket
from engine.openpgp.constants import HashAlgorithm, PublicKeyAlgorithm, RevocationReason
from engine.openpgp.public_key import PublicKey, RSAMaterial
from engine.openpgp.reader import BodyReader
from engine.openpgp.signature import _KNOWN_SUBPACKETS

try:  # libsodium: Ed25519 verification about twice as fast as OpenSSL's
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import BadSignatureError as _SodiumBad
except ImportError:  # pragma: no cover - optional
    _sodium_open = None
try:  # the same function without the wrapper's two buffer allocations per call
    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib

    _SODIUM_OUT = _ffi.new("unsigned char[]", 256)  # scratch: the opened message (a digest) lands here
    _SODIUM_LEN = _ffi.new("unsigned long long *")

    def _sodium_ok(signed: bytes, key: bytes) -> bool:
        """``crypto_sign_open`` of ``signed`` (64-octet signature || message of at most 192 octets)."""
        return _lib.crypto_sign_open(_SODIUM_OUT, _SODIUM_LEN, signed, len(signed), key) == 0

except (ImportError, AttributeError):  # pragma: no cover - another PyNaCl layout

    def _sodium_ok(signed: bytes, key: bytes) -> bool:
        try:
            _sodium_open(signed, key)
        except _SodiumBad:
            return False
        return True


__all__ = ["LeanCert", "Unusual", "packet", "parse_packets"]

A = PublicKeyAlgorithm
_HASHES = {HashAlgorithm.SHA256: "sha256", HashAlgorithm.SHA512: "sha512", HashAlgorithm.SHA384: "sha384"}
_HASHES.update({HashAlgorithm.SHA224: "sha224", HashAlgorithm.SHA1: "sha1"})
_PREHASHED = {h: Prehashed(HashAlgorithm(h).crypto_hash()) for h in _HASHES}  # immutable: shared
_PKCS1 = padding.PKCS1v15()
_SOFT = (RevocationReason.SUPERSEDED, RevocationReason.RETIRED, RevocationReason.USER_ID_INVALID)
_PUBKEY, _SIG, _UID, _SUBKEY, _ATTR = 6, 2, 13, 14, 17
_KNOWN_MASK = bytes(1 if t in _KNOWN_SUBPACKETS else 0 for t in range(128))


class Unusual(Exception):
    """The lean path does not handle this certificate: use the reference path."""


def parse_packets(data: bytes) -> list[tuple[int, bytes]]:
    """``(tag, body)`` of each packet; :class:`Unusual` on anything but definite lengths."""
    try:
        return _native.kernel("wkdsel").packets(data)
    except ValueError as exc:
        raise Unusual(str(exc)) from None


class Sig:
    """The fields of a v4 signature that selection reads, and its verification state."""

    __slots__ = (
        "algo", "body", "created", "critical", "ed", "expires", "fpr", "halg", "hashed_end", "key_exp", "kid",
        "left16", "material", "ok", "primary", "reason", "tail", "type",
    )  # fmt: skip

    def __init__(self, body: bytes, fields: tuple | None = None) -> None:
        if fields is None:
            try:
                fields = _native.kernel("wkdsel").sig_fields(body, _KNOWN_MASK)
            except ValueError as exc:
                raise Unusual(str(exc)) from None
        self.body = body
        self.ok: bool | None = None
        (
            self.type, self.algo, self.halg, self.hashed_end, self.created, self.expires, self.key_exp,
            self.primary, self.reason, self.critical, self.fpr, self.kid, self.left16, self.material,
            self.tail, self.ed,
        ) = fields  # fmt: skip

    def live(self, at: int) -> bool:
        return live(self.created, self.expires, at)


def live(created: int, lifetime: int | None, at: int) -> bool:
    """Whether something created at ``created`` and valid for ``lifetime`` seconds (0 or None: for ever)
    is valid at ``at``: a signature with its expiration, a key with its key expiration."""
    return created <= at and not (lifetime and at >= created + lifetime)


_PLAIN_ALGOS = (A.RSA, A.RSA_SIGN_ONLY, A.EDDSA_LEGACY)
_ALGOS = {int(a): a for a in A}  # ``A(n)`` without the enum call


class _Primary:
    """The fields of a v4 RSA or Ed25519 primary key that the lean path reads, from a body the kernel
    has found well formed (``key_plain``): the same values :meth:`PublicKey.read` gives, cheaper.
    ``material`` is the object itself (``n``, ``e`` for RSA; ``point`` for EdDSA)."""

    __slots__ = ("algorithm", "body", "created", "e", "fingerprint", "material", "n", "point")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.created = int.from_bytes(body[1:5], "big")
        self.algorithm = _ALGOS[body[5]]
        self.fingerprint = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()
        self.material = self
        self.n = self.e = 0
        self.point = b""
        if self.algorithm == A.EDDSA_LEGACY:
            pos = 7 + body[6]
            bits = int.from_bytes(body[pos : pos + 2], "big")
            self.point = body[pos + 2 : pos + 2 + (bits + 7) // 8]
        else:
            nbytes = (int.from_bytes(body[6:8], "big") + 7) // 8
            self.n = int.from_bytes(body[8 : 8 + nbytes], "big")
            pos = 8 + nbytes
            ebytes = (int.from_bytes(body[pos : pos + 2], "big") + 7) // 8
            self.e = int.from_bytes(body[pos + 2 : pos + 2 + ebytes], "big")

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex().upper()

    def to_crypto(self) -> Any:
        """As :meth:`PublicKey.to_crypto` (which it is, for anything but RSA)."""
        if self.algorithm == A.EDDSA_LEGACY:
            return PublicKey.read(BodyReader(self.body, what="public key"), False).to_crypto()
        try:
            return rsa.RSAPublicNumbers(self.e, self.n).public_key()
        except ValueError as e:
            raise MalformedPacket(f"invalid {self.algorithm!r} public key: {e}") from None


class LeanCert:
    """A v4 certificate as packets, with signatures verified on demand (see the module docstring)."""

    def __init__(self, data: bytes) -> None:
        kernel = _native.kernel("wkdsel")
        try:
            body, other, other_fields, uids, subkeys = kernel.cert_parse(data, _KNOWN_MASK)
        except ValueError as exc:  # framing, no primary key first, an unexpected packet
            raise Unusual(str(exc)) from None
        if body[:1] != b"\x04":
            raise Unusual("key version")
        if len(body) > 5 and body[5] in _PLAIN_ALGOS and kernel.key_plain(body):
            self.primary: _Primary | PublicKey = _Primary(body)  # the common shapes, no full parse
        else:
            self.primary = PublicKey.read(BodyReader(body, what="public key"), False)
        if self.primary.algorithm not in _PLAIN_ALGOS:
            raise Unusual("key algorithm")
        self.created = self.primary.created
        self.key_packet = packet(_PUBKEY, body)
        self.prefix = b"\x99" + len(body).to_bytes(2, "big") + body
        self._ctx: dict[int, Any] = {}
        self._pub: Any = None
        self._size = 0  # octets of the RSA modulus, once known
        self._fpr = self.primary.fingerprint
        self._kid = self._fpr[-8:]
        self._algo = self.primary.algorithm
        # the libsodium key of an Ed25519 primary (None: another algorithm, or OpenSSL's path)
        self._sodium: bytes | None = None
        if self._algo == A.EDDSA_LEGACY and _sodium_open is not None:
            point = getattr(self.primary.material, "point", b"")
            if len(point) == 33:
                self._sodium = point[1:]
        self.seconds_verify = 0.0
        # (body, signature bodies, their fields from the kernel): parsed to :class:`Sig` on demand
        self.uids: list[tuple[bytes, list[bytes], list[tuple | None]]] = uids
        self.subkeys: list[tuple[bytes, list[bytes], list[tuple | None]]] = subkeys
        self.other = self.sigs(other, other_fields) if other else []

    @staticmethod
    def sigs(bodies: list[bytes], fields: list[tuple | None]) -> list[Sig]:
        """:class:`Sig` of each signature from the fields the kernel read (None: malformed)."""
        if None in fields:
            raise Unusual("malformed signature")
        return list(map(Sig, bodies, fields))

    # -- verification ---------------------------------------------------------------------------
    def verify(self, s: Sig, data: bytes) -> bool:
        """Is ``s`` a valid signature by the primary key over ``prefix + data`` (memoized)?

        Not critical with an unknown subpacket, issued by the primary (issuer fingerprint, else key
        ID, else no issuer), of its algorithm, the left 16 bits of the digest right, and the value
        verified (libsodium for Ed25519 when installed, else OpenSSL through ``cryptography``)."""
        ok = s.ok
        if ok is not None:
            return ok
        t = _clock()
        fpr = s.fpr
        if s.critical or (s.kid is not None and s.kid != self._kid if fpr is None else fpr != self._fpr):
            ok = False
        else:
            ok = self._check(s, data)
        s.ok = ok
        self.seconds_verify += _clock() - t
        return ok

    def _check(self, s: Sig, data: bytes) -> bool:
        halg = s.halg
        if halg not in _HASHES:
            raise Unusual(f"hash algorithm {halg}")
        if s.algo != self._algo:
            return False
        base = self._ctx.get(halg)
        if base is None:
            base = self._ctx[halg] = hashlib.new(_HASHES[halg], self.prefix)
        h = base.copy()
        h.update(data)
        h.update(s.tail)  # the hashed part of the signature and its trailer, from the kernel
        digest = h.digest()
        if digest[:2] != s.left16:
            return False
        try:
            key = self._sodium
            if key is not None:  # Ed25519 through libsodium; digests are at most 64 octets
                sig = s.ed  # R || S, 64 octets, from the kernel; None when the material is not two MPIs
                return sig is not None and _sodium_ok(sig + digest, key)
            return self._raw_verify(s, digest)
        except (InvalidSignature, ValueError, IndexError):
            return False

    def _raw_verify(self, s: Sig, digest: bytes) -> bool:
        """OpenSSL's verification (raises on a bad signature); Ed25519 comes here without libsodium."""
        m = s.material
        if self._algo == A.EDDSA_LEGACY:
            sig = s.ed  # R || S, 64 octets, from the kernel; None when the material is not two MPIs
            if sig is None:
                return False
            self._key().verify(sig, digest)
            return True
        value, end = _mpi(m, 0)
        if end != len(m):
            return False
        size = self._size
        if not size:
            mat = self.primary.material
            assert isinstance(mat, RSAMaterial | _Primary)
            size = self._size = (mat.n.bit_length() + 7) // 8
        self._key().verify(value.rjust(size, b"\x00"), digest, _PKCS1, _PREHASHED[s.halg])
        return True

    def _key(self) -> Any:
        if self._pub is None:
            self._pub = self.primary.to_crypto()
        return self._pub


def packet(tag: int, body: bytes) -> bytes:
    """``write_packet(tag, body)`` (new format, definite length) without its generality."""
    n = len(body)
    if n < 192:
        return bytes((0xC0 | tag, n)) + body
    if n < 8384:
        n -= 192
        return bytes((0xC0 | tag, (n >> 8) + 192, n & 0xFF)) + body
    return bytes((0xC0 | tag, 0xFF)) + n.to_bytes(4, "big") + body


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
