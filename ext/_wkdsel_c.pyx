"""Native packet scanning of a WKD build (twin: ``engine._wkdsel_py``; see there for the contract).

Every read is bounds-checked against the buffer's length; malformed input raises ``ValueError``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy, memset


cdef bytes _OID_ED25519 = bytes.fromhex("2b06010401da470f01")
cdef bytes _OID_CV25519 = bytes.fromhex("2b060104019755010501")


def features() -> dict:
    """What this implementation is: ``{"native": True}``."""
    return {"native": True}


cdef inline uint32_t _be32(const uint8_t *p) nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


def cert_end(bytes buf, Py_ssize_t pos, Py_ssize_t max_uid, Py_ssize_t max_cert) -> int:
    """End of the plain certificate at ``buf[pos]``, or -1 (see the twin)."""
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t start = pos, hlen, blen, n
    cdef int first, tag, o1, kind
    cdef bint first_packet = True
    if pos < 0:
        return -1
    while pos < end:
        first = b[pos]
        if not first & 0x80:
            return -1
        if first & 0x40:
            tag = first & 0x3F
            if pos + 1 >= end:
                return -1
            o1 = b[pos + 1]
            if o1 < 192:
                hlen = 2
                blen = o1
            elif o1 < 224:
                if pos + 2 >= end:
                    return -1
                hlen = 3
                blen = ((o1 - 192) << 8) + b[pos + 2] + 192
            elif o1 == 255:
                if pos + 5 >= end:
                    return -1
                hlen = 6
                blen = <Py_ssize_t>_be32(b + pos + 2)
            else:
                return -1
        else:
            tag = (first >> 2) & 0x0F
            kind = first & 3
            if kind == 3:
                return -1
            n = 1 << kind
            if pos + n >= end:
                return -1
            hlen = 1 + n
            if n == 1:
                blen = b[pos + 1]
            elif n == 2:
                blen = (b[pos + 1] << 8) | b[pos + 2]
            else:
                blen = <Py_ssize_t>_be32(b + pos + 1)
        if first_packet:
            if tag != 6:
                return -1
            first_packet = False
        elif tag == 6 or tag == 5:
            return pos
        elif tag == 13:
            if blen > max_uid:
                return -1
        elif tag != 2 and tag != 14:
            return -1
        if blen > end:
            return -1
        pos += hlen + blen
        if pos - start > max_cert or pos > end:
            return -1
    return -1


def packets(bytes data) -> list:
    """``(tag, body)`` of each packet; ValueError on anything but definite lengths or a truncation."""
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data), pos = 0, size, n
    cdef int first, tag, o1
    cdef list out = []
    while pos < end:
        first = b[pos]
        if first & 0xC0 == 0xC0:
            tag = first & 0x3F
            if pos + 1 >= end:
                raise ValueError("packet header")
            o1 = b[pos + 1]
            if o1 < 192:
                size = o1
                pos += 2
            elif o1 < 224 and pos + 2 < end:
                size = ((o1 - 192) << 8) + b[pos + 2] + 192
                pos += 3
            elif o1 == 255 and pos + 5 < end:
                size = <Py_ssize_t>_be32(b + pos + 2)
                pos += 6
            else:
                raise ValueError("packet header")
        elif first & 0x80 and first & 3 != 3:
            n = 1 << (first & 3)
            if pos + n >= end:
                raise ValueError("packet header")
            tag = (first >> 2) & 0x0F
            if n == 1:
                size = b[pos + 1]
            elif n == 2:
                size = (b[pos + 1] << 8) | b[pos + 2]
            else:
                size = <Py_ssize_t>_be32(b + pos + 1)
            pos += 1 + n
        else:
            raise ValueError("packet header")
        if size > end - pos:
            raise ValueError("truncated packet")
        out.append((tag, PyBytes_FromStringAndSize(<const char *>b + pos, size)))
        pos += size
    return out


cdef struct _SigState:
    long long created
    long long expires
    long long key_exp
    bint has_key_exp
    bint primary
    int reason
    bint critical
    Py_ssize_t fpr_at
    Py_ssize_t fpr_len
    Py_ssize_t kid_at


cdef int _area(const uint8_t *b, Py_ssize_t blen, Py_ssize_t pos, Py_ssize_t end, bint hashed,
               const uint8_t *known, _SigState *st) except -1:
    cdef Py_ssize_t size, dlen, d
    cdef int o1, t
    if end > blen:
        raise ValueError("signature truncated")
    while pos < end:
        o1 = b[pos]
        if o1 < 192:
            size = o1
            pos += 1
        elif o1 < 255:
            if pos + 1 >= end:
                raise ValueError("subpacket length")
            size = ((o1 - 192) << 8) + b[pos + 1] + 192
            pos += 2
        else:
            if pos + 4 >= end:
                raise ValueError("subpacket length")
            size = <Py_ssize_t>_be32(b + pos + 1)
            pos += 5
        if size == 0 or size > end - pos:
            raise ValueError("subpacket length")
        t = b[pos] & 0x7F
        d = pos + 1
        dlen = size - 1
        if hashed:
            if b[pos] & 0x80 and not known[t]:
                st.critical = True
            if t == 2 and dlen == 4 and not st.created:
                st.created = _be32(b + d)
            elif t == 3 and dlen == 4 and not st.expires:
                st.expires = _be32(b + d)
            elif t == 9 and dlen == 4 and not st.has_key_exp:
                st.key_exp = _be32(b + d)
                st.has_key_exp = True
            elif t == 25 and not st.primary and dlen > 0:
                st.primary = b[d] != 0
            elif t == 29 and dlen > 0 and st.reason < 0:
                st.reason = b[d]
        if t == 33 and st.fpr_at < 0 and dlen > 1:
            st.fpr_at = d + 1
            st.fpr_len = dlen - 1
        elif t == 16 and st.kid_at < 0 and dlen == 8:
            st.kid_at = d
        pos += size
    return 0


def sig_fields(bytes body, bytes known) -> tuple:
    """The fields of a v4 signature body (see the twin)."""
    if PyBytes_GET_SIZE(known) < 128:
        raise ValueError("known must have 128 octets")
    return _sig_fields(body, <const uint8_t *>PyBytes_AS_STRING(known))


cdef tuple _sig_fields(bytes body, const uint8_t *k):
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body), hashed_end, uend
    cdef _SigState st
    if n < 10 or b[0] != 4:
        raise ValueError("signature version")
    st.created = st.expires = st.key_exp = 0
    st.has_key_exp = st.primary = st.critical = False
    st.reason = -1
    st.fpr_at = st.kid_at = -1
    st.fpr_len = 0
    hashed_end = 6 + ((b[4] << 8) | b[5])
    _area(b, n, 6, hashed_end, True, k, &st)
    if hashed_end + 2 > n:
        raise ValueError("signature truncated")
    uend = hashed_end + 2 + ((b[hashed_end] << 8) | b[hashed_end + 1])
    if uend + 2 > n:
        raise ValueError("signature truncated")
    _area(b, n, hashed_end + 2, uend, False, k, &st)
    return (
        b[1], b[2], b[3], hashed_end, st.created, st.expires,
        st.key_exp if st.has_key_exp else None,
        bool(st.primary),
        st.reason if st.reason >= 0 else None,
        bool(st.critical),
        PyBytes_FromStringAndSize(<const char *>b + st.fpr_at, st.fpr_len) if st.fpr_at >= 0 else None,
        PyBytes_FromStringAndSize(<const char *>b + st.kid_at, 8) if st.kid_at >= 0 else None,
        PyBytes_FromStringAndSize(<const char *>b + uend, 2),
        PyBytes_FromStringAndSize(<const char *>b + uend + 2, n - uend - 2),
        _tail(b, hashed_end),
        _ed_sig(b + uend + 2, n - uend - 2),
    )


cdef bytes _tail(const uint8_t *b, Py_ssize_t hashed_end):
    """``b[:hashed_end] || 04 FF || be32(hashed_end)`` (the caller has checked ``hashed_end``)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, hashed_end + 6)
    cdef uint8_t *o = <uint8_t *>PyBytes_AS_STRING(out)
    memcpy(o, b, hashed_end)
    o[hashed_end] = 4
    o[hashed_end + 1] = 0xFF
    o[hashed_end + 2] = (hashed_end >> 24) & 0xFF
    o[hashed_end + 3] = (hashed_end >> 16) & 0xFF
    o[hashed_end + 4] = (hashed_end >> 8) & 0xFF
    o[hashed_end + 5] = hashed_end & 0xFF
    return out


cdef object _ed_sig(const uint8_t *m, Py_ssize_t n):
    """Two MPIs filling ``m[:n]`` exactly, each of at most 32 octets, as 64 octets; else None."""
    cdef Py_ssize_t e1, e2, l1, l2
    if n < 2:
        return None
    e1 = 2 + ((((<Py_ssize_t>m[0]) << 8) | m[1]) + 7) // 8
    if e1 + 2 > n:
        return None
    e2 = e1 + 2 + ((((<Py_ssize_t>m[e1]) << 8) | m[e1 + 1]) + 7) // 8
    l1 = e1 - 2
    l2 = e2 - e1 - 2
    if e2 != n or l1 > 32 or l2 > 32:
        return None
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 64)
    cdef uint8_t *o = <uint8_t *>PyBytes_AS_STRING(out)
    memset(o, 0, 64)
    memcpy(o + 32 - l1, m + 2, l1)
    memcpy(o + 64 - l2, m + e1 + 2, l2)
    return out


cdef Py_ssize_t _mpi_end(const uint8_t *b, Py_ssize_t pos, Py_ssize_t end):
    cdef int bits
    cdef Py_ssize_t n
    if pos + 2 > end:
        return -1
    bits = (b[pos] << 8) | b[pos + 1]
    n = (bits + 7) >> 3
    if pos + 2 + n > end:
        return -1
    if n and bits and (b[pos + 2] >> ((bits - 1) % 8 + 1)):
        return -1
    return pos + 2 + n


def key_plain(bytes body) -> bool:
    """True for a common, well-formed v4 subkey body (see the twin)."""
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(body), pos = 6, n, i
    cdef int algo
    cdef bytes oid
    if end < 6 or b[0] != 4:
        return False
    algo = b[5]
    if algo == 1 or algo == 2 or algo == 3:
        pos = _mpi_end(b, pos, end)
        return pos >= 0 and _mpi_end(b, pos, end) >= 0
    if algo == 22:
        oid = _OID_ED25519
    elif algo == 18:
        oid = _OID_CV25519
    else:
        return False
    n = PyBytes_GET_SIZE(oid)
    if pos + 1 + n > end or b[pos] != n:
        return False
    for i in range(n):
        if b[pos + 1 + i] != <uint8_t>oid[i]:
            return False
    pos = _mpi_end(b, pos + 1 + n, end)
    if pos < 0:
        return False
    if algo == 22:
        return True
    return (
        pos + 4 <= end and b[pos] == 3 and b[pos + 1] == 1
        and b[pos + 2] in (2, 8, 9, 10, 11) and b[pos + 3] in (7, 8, 9)
    )


def cert_parse(bytes data, bytes known) -> tuple:
    """A certificate's packets grouped for selection, signature fields included (see the twin)."""
    if PyBytes_GET_SIZE(known) < 128:
        raise ValueError("known must have 128 octets")
    cdef const uint8_t *k = <const uint8_t *>PyBytes_AS_STRING(known)
    cdef list pk = packets(data)
    cdef list other = [], uids = [], subkeys = []
    cdef list bodies = None, fields = None
    cdef Py_ssize_t i, n = len(pk)
    cdef int tag
    cdef bytes body
    cdef bint drop = False
    if n == 0 or pk[0][0] != 6:
        raise ValueError("no primary key")
    cdef tuple group = (other, [])
    bodies = other
    fields = group[1]
    cdef list other_fields = fields
    for i in range(1, n):
        tag = pk[i][0]
        body = pk[i][1]
        if tag == 2:
            if drop:
                continue
            bodies.append(body)
            try:
                fields.append(_sig_fields(body, k))
            except ValueError:
                fields.append(None)
        elif tag == 13 or tag == 14:
            drop = False
            bodies = []
            fields = []
            (uids if tag == 13 else subkeys).append((body, bodies, fields))
        elif tag == 17:
            drop = True
        else:
            raise ValueError(f"packet tag {tag}")
    return pk[0][1], other, other_fields, uids, subkeys
