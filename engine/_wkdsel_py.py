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

Malformed or unusual input raises ``ValueError`` (never another exception, never a crash).
"""

from __future__ import annotations

__all__ = ["cert_end", "cert_parse", "features", "key_plain", "packets", "sig_fields"]

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
