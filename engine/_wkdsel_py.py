"""Pure-Python twin of ``engine._wkdsel_c``: the packet scanning of a WKD build.

Same names, arguments, results and errors as the native kernel; the tests run every case on both.

* :func:`cert_end`: where the certificate starting at ``pos`` of a keyring buffer ends, when it is a
  plain one the splitter may cut as one slice (the common case); ``-1`` sends the caller down its
  packet-by-packet path.
* :func:`packets`: ``(tag, body)`` of each packet of one certificate (definite lengths only).
* :func:`sig_fields`: the fields of a v4 signature that WKD selection reads.
* :func:`cert_parse`: the packets of one certificate grouped for selection, with the fields of every
  signature (None for one :func:`sig_fields` refuses).
* :func:`key_plain`: True when a v4 key or subkey packet body is of a common, well-formed shape
  (RSA, Ed25519 or Curve25519 legacy) that the full key parser accepts.

* :func:`plain_cert`: for a certificate of the common shape, everything WKD selection needs in one call
  (digests computed, signatures checked up to the public-key operation, addresses parsed, output
  packets assembled); None for any other certificate. :func:`rsa_verify` does the RSA operation.

Malformed or unusual input raises ``ValueError`` (never another exception, never a crash).
"""

from __future__ import annotations

import hashlib
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from engine.openpgp.packet import packet_header
from engine.openpgp.userid import _ANGLE, _BARE

__all__ = [
    "RsaKey", "cert_end", "cert_parse", "features", "key_plain", "packets", "plain_cert", "rsa_verify",
    "sig_fields",
]  # fmt: skip

_PUBKEY, _SIG, _UID, _SUBKEY, _SECRET_KEY = 6, 2, 13, 14, 5
_OID_ED25519 = bytes.fromhex("2b06010401da470f01")
_OID_CV25519 = bytes.fromhex("2b060104019755010501")
_KDF_HASHES = frozenset((2, 8, 9, 10, 11))  # SHA-1, SHA-256, SHA-384, SHA-512, SHA-224
_KDF_CIPHERS = frozenset((7, 8, 9))  # AES-128, AES-192, AES-256


def features() -> dict:
    """What this implementation is: ``{"native": False}``."""
    return {"native": False}


def cert_end(buf: bytes, pos: int, max_uid: int, max_cert: int) -> int:
    """End of the plain certificate at ``buf[pos]``, or -1.

    Plain: a v4-or-other public key packet (tag 6) followed by signature, User ID (at most
    ``max_uid`` bytes of body) and public subkey packets only, each with a definite length, all
    inside ``buf``, at most ``max_cert`` bytes in all, and followed inside ``buf`` by the header
    octet of the next public or secret key packet. Anything else (end of the buffer included): -1.
    """
    end = len(buf)
    start = pos
    first_packet = True
    if pos < 0:
        return -1
    while pos < end:
        first = buf[pos]
        if not first & 0x80:
            return -1
        if first & 0x40:
            tag = first & 0x3F
            if pos + 1 >= end:
                return -1
            o1 = buf[pos + 1]
            if o1 < 192:
                hlen, blen = 2, o1
            elif o1 < 224:
                if pos + 2 >= end:
                    return -1
                hlen, blen = 3, ((o1 - 192) << 8) + buf[pos + 2] + 192
            elif o1 == 255:
                if pos + 5 >= end:
                    return -1
                hlen, blen = 6, int.from_bytes(buf[pos + 2 : pos + 6], "big")
            else:
                return -1
        else:
            tag, kind = (first >> 2) & 0x0F, first & 3
            if kind == 3:
                return -1
            n = 1 << kind
            if pos + n >= end:
                return -1
            hlen, blen = 1 + n, int.from_bytes(buf[pos + 1 : pos + 1 + n], "big")
        if first_packet:
            if tag != _PUBKEY:
                return -1
            first_packet = False
        elif tag in (_PUBKEY, _SECRET_KEY):
            return pos
        elif tag == _UID:
            if blen > max_uid:
                return -1
        elif tag not in (_SIG, _SUBKEY):
            return -1
        pos += hlen + blen
        if pos - start > max_cert or pos > end:
            return -1
    return -1


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """``(tag, body)`` of each packet; ValueError on anything but definite lengths or a truncation."""
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
                raise ValueError("packet header")
        elif first & 0x80 and first & 3 != 3:
            n = 1 << (first & 3)
            if pos + n >= end:
                raise ValueError("packet header")
            tag, size, pos = (
                (first >> 2) & 0x0F,
                int.from_bytes(data[pos + 1 : pos + 1 + n], "big"),
                pos + 1 + n,
            )
        else:
            raise ValueError("packet header")
        if pos + size > end:
            raise ValueError("truncated packet")
        out.append((tag, data[pos : pos + size]))
        pos += size
    return out


def sig_fields(body: bytes, known: bytes) -> tuple:
    """``(type, algo, halg, hashed_end, created, expires, key_exp, primary, reason, critical, fpr, kid,
    left16, material, tail, ed)`` of a v4 signature body; ``known[t]`` is nonzero for the subpacket types
    understood (a critical unknown one in the hashed area sets ``critical``). ``key_exp``, ``reason``,
    ``fpr`` and ``kid`` are None when absent. ``tail``: what the signature hashes after the signed data
    (the body up to the hashed area's end, then ``04 FF`` and that length in four octets); ``ed``: the
    material as an Ed25519 signature ``R || S`` (two MPIs of at most 32 octets each, left-padded with
    zeros, and nothing after them), else None. ValueError on another version or a bad length."""
    if len(body) < 10 or body[0] != 4:
        raise ValueError("signature version")
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    st = [
        0,
        0,
        None,
        False,
        None,
        False,
        None,
        None,
    ]  # created expires key_exp primary reason critical fpr kid
    _area(body, 6, hashed_end, True, known, st)
    ulen = int.from_bytes(body[hashed_end : hashed_end + 2], "big")
    uend = hashed_end + 2 + ulen
    if uend + 2 > len(body):
        raise ValueError("signature truncated")
    _area(body, hashed_end + 2, uend, False, known, st)
    created, expires, key_exp, primary, reason, critical, fpr, kid = st
    return (
        body[1], body[2], body[3], hashed_end, created, expires, key_exp, primary, reason, critical, fpr,
        kid, body[uend : uend + 2], body[uend + 2 :], body[:hashed_end] + b"\x04\xff" + hashed_end.to_bytes(4, "big"),
        _ed_sig(body[uend + 2 :]),
    )  # fmt: skip


def _ed_sig(m: bytes) -> bytes | None:
    """Two MPIs filling ``m`` exactly, each of at most 32 octets, as 64 octets; else None."""
    if len(m) < 2:
        return None
    e1 = 2 + ((m[0] << 8 | m[1]) + 7) // 8
    if e1 + 2 > len(m):
        return None
    e2 = e1 + 2 + ((m[e1] << 8 | m[e1 + 1]) + 7) // 8
    if e2 != len(m) or e1 - 2 > 32 or e2 - e1 - 2 > 32:
        return None
    return m[2:e1].rjust(32, b"\x00") + m[e1 + 2 : e2].rjust(32, b"\x00")


def _area(body: bytes, pos: int, end: int, hashed: bool, known: bytes, st: list) -> None:
    if end > len(body):
        raise ValueError("signature truncated")
    while pos < end:
        o1 = body[pos]
        if o1 < 192:
            size, pos = o1, pos + 1
        elif o1 < 255:
            if pos + 1 >= end:
                raise ValueError("subpacket length")
            size, pos = ((o1 - 192) << 8) + body[pos + 1] + 192, pos + 2
        else:
            if pos + 4 >= end:
                raise ValueError("subpacket length")
            size, pos = int.from_bytes(body[pos + 1 : pos + 5], "big"), pos + 5
        if size == 0 or pos + size > end:
            raise ValueError("subpacket length")
        t, data = body[pos] & 0x7F, body[pos + 1 : pos + size]
        if hashed:
            if body[pos] & 0x80 and not known[t]:
                st[5] = True
            if t == 2 and len(data) == 4 and not st[0]:
                st[0] = int.from_bytes(data, "big")
            elif t == 3 and len(data) == 4 and not st[1]:
                st[1] = int.from_bytes(data, "big")
            elif t == 9 and len(data) == 4 and st[2] is None:
                st[2] = int.from_bytes(data, "big")
            elif t == 25 and not st[3] and data:
                st[3] = bool(data[0])
            elif t == 29 and data and st[4] is None:
                st[4] = data[0]
        if t == 33 and st[6] is None and len(data) > 1:
            st[6] = data[1:]
        elif t == 16 and st[7] is None and len(data) == 8:
            st[7] = data
        pos += size


def _mpi_end(b: bytes, pos: int, end: int) -> int:
    """End of the MPI at ``pos`` (its bit count matching its leading octet), or -1."""
    if pos + 2 > end:
        return -1
    bits = (b[pos] << 8) | b[pos + 1]
    n = (bits + 7) >> 3
    if pos + 2 + n > end:
        return -1
    if n and bits and b[pos + 2] >> ((bits - 1) % 8 + 1):
        return -1
    return pos + 2 + n


def key_plain(body: bytes) -> bool:
    """True for a v4 RSA (1, 2, 3), Ed25519 legacy (22) or Curve25519 legacy ECDH (18, with an
    AES key wrap KDF of a known hash) key or subkey body whose fields all parse; False for anything else
    (which may still be valid: ask the full parser)."""
    end = len(body)
    if end < 6 or body[0] != 4:
        return False
    algo, pos = body[5], 6
    if algo in (1, 2, 3):
        pos = _mpi_end(body, pos, end)
        return pos >= 0 and _mpi_end(body, pos, end) >= 0
    if algo == 22:
        oid = _OID_ED25519
    elif algo == 18:
        oid = _OID_CV25519
    else:
        return False
    n = len(oid)
    if pos + 1 + n > end or body[pos] != n or body[pos + 1 : pos + 1 + n] != oid:
        return False
    pos = _mpi_end(body, pos + 1 + n, end)
    if pos < 0:
        return False
    if algo == 22:
        return True
    return (
        pos + 4 <= end and body[pos] == 3 and body[pos + 1] == 1
        and body[pos + 2] in _KDF_HASHES and body[pos + 3] in _KDF_CIPHERS
    )  # fmt: skip


def cert_parse(data: bytes, known: bytes) -> tuple:
    """``(primary key body, direct signature bodies, their fields, User IDs, subkeys)``: a User ID or
    subkey is ``(body, signature bodies, their fields)``; a signature's fields are :func:`sig_fields`
    or None where that raises. Signatures after a User Attribute (tag 17) are dropped with it.
    ValueError from :func:`packets`, when the first packet is not a public key (tag 6), or for a
    packet other than signature, User ID, User Attribute and public subkey."""
    if len(known) < 128:
        raise ValueError("known must have 128 octets")
    pk = packets(data)
    if not pk or pk[0][0] != _PUBKEY:
        raise ValueError("no primary key")
    other: list[bytes] = []
    other_fields: list[tuple | None] = []
    uids: list[tuple] = []
    subkeys: list[tuple] = []
    bodies, fields, drop = other, other_fields, False
    for tag, body in pk[1:]:
        if tag == _SIG:
            if drop:
                continue
            bodies.append(body)
            try:
                fields.append(sig_fields(body, known))
            except ValueError:
                fields.append(None)
        elif tag in (_UID, _SUBKEY):
            drop = False
            bodies, fields = [], []
            (uids if tag == _UID else subkeys).append((body, bodies, fields))
        elif tag == 17:
            drop = True
        else:
            raise ValueError(f"packet tag {tag}")
    return pk[0][1], other, other_fields, uids, subkeys


# -- the common certificate in one call ------------------------------------------------------------------

_DIGESTS = {2: "sha1", 11: "sha224", 8: "sha256", 9: "sha384", 10: "sha512"}  # OpenPGP id: hashlib name
_PREHASHED = {
    n: Prehashed(h) for n, h in ((20, hashes.SHA1()), (28, hashes.SHA224()), (32, hashes.SHA256()),
                                 (48, hashes.SHA384()), (64, hashes.SHA512()))
}  # fmt: skip  # by digest size
_PKCS1 = padding.PKCS1v15()
_BAD_LOCAL = re.compile(b"[\x00-\x20\x7f]|\xc2[\x80-\x9f]")  # ASCII controls, space, C1 controls (UTF-8)
_LABEL = rb"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_PLAIN_DOMAIN = re.compile(rb"%s(?:\.%s)*" % (_LABEL, _LABEL))
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


class RsaKey:
    """An RSA public key: ``n`` and ``e`` without leading zero octets, ``size`` = len(n), ``key`` the
    ``cryptography`` object."""

    __slots__ = ("e", "key", "n", "size")

    def __init__(self, n: bytes, e: bytes) -> None:
        self.n, self.e, self.size = n, e, len(n)
        self.key = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()


def rsa_verify(signed: bytes, key: RsaKey) -> bool:
    """PKCS #1 v1.5 verification: ``signed`` is the signature (``key.size`` octets) then the digest, whose
    length names the hash (SHA-1, -224, -256, -384, -512); False for anything else."""
    prehashed = _PREHASHED.get(len(signed) - key.size)
    if prehashed is None:
        return False
    try:
        key.key.verify(signed[: key.size], signed[key.size :], _PKCS1, prehashed)
    except (InvalidSignature, ValueError):
        return False
    return True


def _plain_address(u: bytes) -> tuple[str, str, str] | None:
    """``(local, domain, address)`` as ``normalize_address`` gives them for the address of User ID ``u``
    (``_ANGLE.search(u) or _BARE.match(u)``, engine.openpgp.userid) when that address is plain: one '@';
    a local part of at most 256 octets of printable ASCII or UTF-8 without C1 controls; a domain of ASCII
    letters, digits, '-', '.', '_' whose labels are 1 to 63 octets not starting or ending with '-' (253 in
    all). None for any other User ID (the caller asks the full rules)."""
    m = _ANGLE.search(u) or _BARE.match(u)
    if m is None:
        return None
    local, _, domain = m.group(1).partition(b"@")
    if b"@" in domain or len(local) > 256 or len(domain) > 253 or _BAD_LOCAL.search(local):
        return None
    if not _PLAIN_DOMAIN.fullmatch(domain):
        return None
    try:
        text = local.decode()
    except UnicodeDecodeError:
        return None
    low = domain.translate(_ASCII_LOWER).decode()
    return text, low, f"{local.translate(_ASCII_LOWER).decode()}@{low}"


class _Key:
    """The primary key's parts :func:`_check` needs."""

    __slots__ = ("algo", "fpr", "prefix", "size")

    def __init__(self, prefix: bytes, algo: int, size: int) -> None:
        self.prefix, self.algo, self.size = prefix, algo, size
        self.fpr = hashlib.sha1(prefix).digest()


def _check(key: _Key, s: bytes, fields: tuple, data: bytes) -> bytes | None:
    """What ``LeanCert.verify`` hands the public-key operation for signature ``s`` over ``prefix + data``:
    Ed25519 ``R || S || digest``, RSA the signature value left-padded to the modulus size, then the digest.
    None when it refuses the signature before that: critical unknown subpacket, another issuer, another
    algorithm, the left 16 bits of the digest wrong, a material not of the algorithm's shape."""
    critical, fpr, kid, left16, material, tail, ed = fields[9:16]
    if critical or (kid is not None and kid != key.fpr[-8:] if fpr is None else fpr != key.fpr):
        return None
    if s[2] != key.algo:
        return None
    digest = hashlib.new(_DIGESTS[s[3]], key.prefix + data + tail).digest()
    if digest[:2] != left16:
        return None
    if key.algo == 22:
        return None if ed is None else ed + digest
    if len(material) < 2:
        return None
    vlen = (int.from_bytes(material[:2], "big") + 7) // 8
    if 2 + vlen != len(material) or vlen > key.size:
        return None
    return material[2:].rjust(key.size, b"\x00") + digest


def _material(body: bytes) -> bytes | RsaKey | None:
    """The Ed25519 public key (32 octets) or the :class:`RsaKey` of a primary key body ``key_plain``
    accepted; None when the point is not 33 octets or ``RSAPublicNumbers`` would refuse the numbers."""
    if body[5] == 22:
        point = 7 + body[6]
        if (int.from_bytes(body[point : point + 2], "big") + 7) // 8 != 33:
            return None
        return body[point + 3 : point + 35]
    nlen = (int.from_bytes(body[6:8], "big") + 7) // 8
    n = body[8 : 8 + nlen]
    elen = (int.from_bytes(body[8 + nlen : 10 + nlen], "big") + 7) // 8
    e = body[10 + nlen : 10 + nlen + elen]
    n, e = n.lstrip(b"\x00"), e.lstrip(b"\x00")
    ni, ei = int.from_bytes(n, "big"), int.from_bytes(e, "big")
    if ni < 3 or ei < 3 or not ei & 1 or ei >= ni:
        return None
    return RsaKey(n, e)


def plain_cert(data: bytes, known: bytes) -> tuple | None:
    """``(fingerprint hex, created, key, key packet, User IDs, subkeys)`` of a certificate of the common
    shape, else None. The shape: packets as :func:`cert_parse` groups them, without direct-key signatures or
    key revocations; a v4 primary key that :func:`key_plain` accepts, RSA (1, 3) whose numbers
    ``RSAPublicNumbers`` accepts or Ed25519 with a 33-octet point; exactly one signature on each User ID
    and subkey, which :func:`sig_fields` reads, of a hash SHA-1/-224/-256/-384/-512, and without a key
    expiration when it is a self-signature candidate (certification 0x10-0x13 not older than the key);
    subkeys v4, accepted by :func:`key_plain`, bodies under 64 KiB. User Attributes are dropped.

    ``key``: the Ed25519 public key (32 octets) or an :class:`RsaKey`. A User ID is ``(address, body,
    check, created, expires, primary, packets)``, a subkey ``(check, key created, created, expires,
    key expiration or 0, packets)``: ``address`` from :func:`_plain_address` (None: ask the full rules),
    ``created`` / ``expires`` / ``primary`` those of the signature, ``packets`` the body's and the
    signature's packets under new-format headers. ``check`` (self-signature candidates and subkey bindings
    only, else None) is :func:`_check`'s: what to verify with the key, None when it fails before that."""
    if len(known) < 128:
        raise ValueError("known must have 128 octets")
    try:
        body, other, _, uids, subkeys = cert_parse(data, known)
    except ValueError:
        return None
    if other or len(body) < 6 or len(body) > 0xFFFF or body[0] != 4 or body[5] not in (1, 3, 22):
        return None
    if not key_plain(body):
        return None
    material = _material(body)
    if material is None:
        return None
    key = _Key(
        b"\x99" + len(body).to_bytes(2, "big") + body, body[5], 0 if body[5] == 22 else len(material.n)
    )
    created = int.from_bytes(body[1:5], "big")
    out_uids = []
    for uid, sigs, fields in uids:
        if len(sigs) != 1 or fields[0] is None or fields[0][2] not in _DIGESTS:
            return None
        s, f = sigs[0], fields[0]
        check = None
        if 0x10 <= f[0] <= 0x13 and f[4] >= created:
            if f[6] is not None:
                return None
            check = _check(key, s, f, b"\xb4" + len(uid).to_bytes(4, "big") + uid)
        packets = packet_header(13, len(uid)) + uid + packet_header(2, len(s)) + s
        out_uids.append((_plain_address(uid), uid, check, f[4], f[5], f[7], packets))
    out_subs = []
    for sub, sigs, fields in subkeys:
        if len(sigs) != 1 or fields[0] is None or fields[0][2] not in _DIGESTS:
            return None
        if not 6 <= len(sub) <= 0xFFFF or sub[0] != 4 or not key_plain(sub):
            return None
        s, f = sigs[0], fields[0]
        check = _check(key, s, f, b"\x99" + len(sub).to_bytes(2, "big") + sub) if f[0] == 0x18 else None
        packets = packet_header(14, len(sub)) + sub + packet_header(2, len(s)) + s
        out_subs.append((check, int.from_bytes(sub[1:5], "big"), f[4], f[5], f[6] or 0, packets))
    fpr = key.fpr.hex().upper()
    return fpr, created, material, packet_header(6, len(body)) + body, out_uids, out_subs
