"""Native packet scanning of a WKD build (twin: ``engine._wkdsel_py``; see there for the contract).

Every read is bounds-checked against the buffer's length; malformed input raises ``ValueError``.
``plain_cert`` hashes with OpenSSL's libcrypto (``csrc/wkdsel.c``) and ``rsa_verify`` verifies there.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcmp, memcpy, memset


cdef extern from "wkdsel.h":
    int WKS_MAX_DIGEST
    int wks_init()
    int wks_md_index(int halg)
    int wks_md_index_by_size(size_t n)
    unsigned long wks_prefix(int md, const uint8_t *prefix, size_t n)
    unsigned long wks_prefix_generation()
    int wks_finish(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, const uint8_t *c, size_t clen,
                   const uint8_t *d, size_t dlen, uint8_t *out)
    int wks_sha1(const uint8_t *data, size_t n, uint8_t *out)
    void *wks_rsa_new(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen)
    void wks_rsa_free(void *key)
    int wks_rsa_verify(void *key, int md, const uint8_t *sig, size_t siglen, const uint8_t *dig, size_t dlen)


if not wks_init():
    raise ImportError("wkdsel: OpenSSL digests unavailable")


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


cdef Py_ssize_t _next_packet(const uint8_t *b, Py_ssize_t end, Py_ssize_t pos, int *tag, Py_ssize_t *size):
    """The packet whose header is at ``b[pos]``: its tag and body size; the body's start, -1 for a bad
    header (anything but a definite length), -2 for a body past ``end``."""
    cdef int first, o1
    cdef Py_ssize_t n
    first = b[pos]
    if first & 0xC0 == 0xC0:
        tag[0] = first & 0x3F
        if pos + 1 >= end:
            return -1
        o1 = b[pos + 1]
        if o1 < 192:
            size[0] = o1
            pos += 2
        elif o1 < 224 and pos + 2 < end:
            size[0] = ((o1 - 192) << 8) + b[pos + 2] + 192
            pos += 3
        elif o1 == 255 and pos + 5 < end:
            size[0] = <Py_ssize_t>_be32(b + pos + 2)
            pos += 6
        else:
            return -1
    elif first & 0x80 and first & 3 != 3:
        n = 1 << (first & 3)
        if pos + n >= end:
            return -1
        tag[0] = (first >> 2) & 0x0F
        if n == 1:
            size[0] = b[pos + 1]
        elif n == 2:
            size[0] = (b[pos + 1] << 8) | b[pos + 2]
        else:
            size[0] = <Py_ssize_t>_be32(b + pos + 1)
        pos += 1 + n
    else:
        return -1
    if size[0] > end - pos:
        return -2
    return pos


def packets(bytes data) -> list:
    """``(tag, body)`` of each packet; ValueError on anything but definite lengths or a truncation."""
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data), pos = 0, size = 0, start
    cdef int tag = 0
    cdef list out = []
    while pos < end:
        start = _next_packet(b, end, pos, &tag, &size)
        if start == -1:
            raise ValueError("packet header")
        if start == -2:
            raise ValueError("truncated packet")
        out.append((tag, PyBytes_FromStringAndSize(<const char *>b + start, size)))
        pos = start + size
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


cdef Py_ssize_t _sig_scan(const uint8_t *b, Py_ssize_t n, const uint8_t *k, _SigState *st,
                          Py_ssize_t *hashed_end_out) except -1:
    """Read the subpackets of the v4 signature ``b[:n]`` into ``st``; the end of its unhashed area."""
    cdef Py_ssize_t hashed_end, uend
    if n < 10 or b[0] != 4:
        raise ValueError("signature version")
    st.created = st.expires = st.key_exp = 0
    st.has_key_exp = st.primary = st.critical = False
    st.reason = -1
    st.fpr_at = st.kid_at = -1
    st.fpr_len = 0
    hashed_end = 6 + ((b[4] << 8) | b[5])
    _area(b, n, 6, hashed_end, True, k, st)
    if hashed_end + 2 > n:
        raise ValueError("signature truncated")
    uend = hashed_end + 2 + ((b[hashed_end] << 8) | b[hashed_end + 1])
    if uend + 2 > n:
        raise ValueError("signature truncated")
    _area(b, n, hashed_end + 2, uend, False, k, st)
    hashed_end_out[0] = hashed_end
    return uend


cdef tuple _sig_fields(bytes body, const uint8_t *k):
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body), hashed_end = 0, uend
    cdef _SigState st
    uend = _sig_scan(b, n, k, &st, &hashed_end)
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
    return _key_plain(<const uint8_t *>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))


cdef bint _key_plain(const uint8_t *b, Py_ssize_t end):
    cdef Py_ssize_t pos = 6, n, i
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


# -- the common certificate in one call (see the twin's ``plain_cert``) -----------------------------------

cdef class RsaKey:
    """An RSA public key held by OpenSSL: ``n`` and ``e`` without leading zero octets, ``size`` = len(n)."""

    cdef void *key
    cdef readonly bytes n
    cdef readonly bytes e
    cdef readonly Py_ssize_t size

    def __dealloc__(self):
        if self.key != NULL:
            wks_rsa_free(self.key)


def rsa_verify(bytes signed, RsaKey key not None) -> bool:
    """PKCS #1 v1.5: ``signed`` is the signature (``key.size`` octets) then the digest (see the twin)."""
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(signed)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(signed), size = key.size
    cdef int md = wks_md_index_by_size(n - size) if n > size else -1
    if md < 0:
        return False
    return wks_rsa_verify(key.key, md, b, size, b + size, n - size) == 1


cdef inline bint _ws(uint8_t c):
    return c == 32 or 9 <= c <= 13


cdef inline bint _domain_char(uint8_t c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 45 or c == 46 or c == 95


cdef object _plain_address(const uint8_t *u, Py_ssize_t n):
    """``(local, domain, address)`` of a User ID whose address is plain ASCII (see the twin), else None."""
    cdef Py_ssize_t end = n, i, j, k, s = -1, e = -1, at = -1, label = 0
    cdef uint8_t c
    cdef bint found = False, wide = False
    while end > 0 and _ws(u[end - 1]):
        end -= 1
    if end > 0 and u[end - 1] == 62:  # ``<...@...>`` then white space: the last such bracket
        j = end - 1
        i = j - 1
        while i >= 0 and u[i] != 60 and u[i] != 62 and not _ws(u[i]):
            i -= 1
        if i >= 0 and u[i] == 60:
            for k in range(i + 2, j - 1):
                if u[k] == 64:
                    found = True
                    break
            if found:
                s, e = i + 1, j
    if s < 0:  # the whole User ID, white space around it
        i = 0
        while i < end and _ws(u[i]):
            i += 1
        if i == end:
            return None
        for k in range(i, end):
            c = u[k]
            if c == 60 or c == 62 or _ws(c) or (c == 64 and (at >= 0 or k == i or k == end - 1)):
                return None
            if c == 64:
                at = k
        if at < 0:
            return None
        s, e = i, end
    at = -1
    for k in range(s, e):
        c = u[k]
        if c >= 0x80:  # UTF-8, in the local part only, without C1 controls (U+0080-U+009F: C2 80-9F)
            if at >= 0 or (c == 0xC2 and k + 1 < e and 0x80 <= u[k + 1] <= 0x9F):
                return None
            wide = True
            continue
        if c < 0x21 or c > 0x7E:
            return None
        if c == 64:
            if at >= 0:
                return None
            at = k
    if at < 0 or at - s > 256 or e - at - 1 > 253 or at + 1 >= e:
        return None
    if u[at + 1] == 46 or u[e - 1] == 46:
        return None
    label = at + 1
    for k in range(at + 1, e + 1):
        if k == e or u[k] == 46:
            if k == label or k - label > 63 or u[label] == 45 or u[k - 1] == 45:
                return None  # an empty label (``..``), a long one, or one starting or ending with '-'
            label = k + 1
        elif not _domain_char(u[k]):
            return None
    cdef bytes low = PyBytes_FromStringAndSize(<const char *>u + s, e - s)
    cdef uint8_t *o = <uint8_t *>PyBytes_AS_STRING(low)
    for k in range(e - s):
        if 65 <= o[k] <= 90:
            o[k] += 32
    if wide:
        try:
            local = PyUnicode_DecodeUTF8(<const char *>u + s, at - s, NULL)
        except UnicodeDecodeError:
            return None
        return (
            local,
            PyUnicode_DecodeASCII(<const char *>o + (at - s) + 1, e - at - 1, NULL),
            PyUnicode_DecodeUTF8(<const char *>o, e - s, NULL),
        )
    return (
        PyUnicode_DecodeASCII(<const char *>u + s, at - s, NULL),
        PyUnicode_DecodeASCII(<const char *>o + (at - s) + 1, e - at - 1, NULL),
        PyUnicode_DecodeASCII(<const char *>o, e - s, NULL),
    )


cdef Py_ssize_t _header(uint8_t *o, int tag, Py_ssize_t n):
    """A new-format packet header for a body of ``n`` octets into ``o`` (as ``lean.packet``); its length."""
    o[0] = 0xC0 | tag
    if n < 192:
        o[1] = <uint8_t>n
        return 2
    if n < 8384:
        n -= 192
        o[1] = <uint8_t>((n >> 8) + 192)
        o[2] = n & 0xFF
        return 3
    o[1] = 0xFF
    o[2] = (n >> 24) & 0xFF
    o[3] = (n >> 16) & 0xFF
    o[4] = (n >> 8) & 0xFF
    o[5] = n & 0xFF
    return 6


cdef bytes _two_packets(const uint8_t *b, int tag, Py_ssize_t at, Py_ssize_t n, Py_ssize_t sig_at,
                        Py_ssize_t sig_n):
    """``packet(tag, b[at:at+n]) + packet(2, b[sig_at:sig_at+sig_n])``."""
    cdef uint8_t hdr[12]
    cdef Py_ssize_t h1 = _header(hdr, tag, n), h2 = _header(hdr + 6, 2, sig_n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, h1 + n + h2 + sig_n)
    cdef uint8_t *o = <uint8_t *>PyBytes_AS_STRING(out)
    memcpy(o, hdr, h1)
    memcpy(o + h1, b + at, n)
    memcpy(o + h1 + n, hdr + 6, h2)
    memcpy(o + h1 + n + h2, b + sig_at, sig_n)
    return out


cdef struct _Key:
    const uint8_t *prefix  # 0x99 || be16(len) || primary key body
    Py_ssize_t prefix_len
    uint8_t fpr[20]
    int algo
    int md  # the digest the prefix is hashed into (-1: none yet)
    unsigned long generation  # that of the prefix hashed (see wkdsel.h)
    Py_ssize_t size  # RSA: octets of the modulus


cdef object _check(_Key *key, const uint8_t *s, Py_ssize_t n, _SigState *st, Py_ssize_t hashed_end,
                   Py_ssize_t uend, int md, const uint8_t *hdr, Py_ssize_t hdr_len, const uint8_t *body,
                   Py_ssize_t body_len):
    """What ``LeanCert.verify`` would hand the signature primitive (see the twin), or None when it
    refuses the signature before that."""
    cdef uint8_t digest[64]
    cdef uint8_t trailer[6]
    cdef int dlen
    cdef Py_ssize_t m = uend + 2, mlen = n - uend - 2, bits, vlen
    if st.critical:
        return None
    if st.fpr_at >= 0:
        if st.fpr_len != 20 or memcmp(s + st.fpr_at, key.fpr, 20) != 0:
            return None
    elif st.kid_at >= 0 and memcmp(s + st.kid_at, key.fpr + 12, 8) != 0:
        return None
    if s[2] != key.algo:
        return None
    if key.md != md or key.generation != wks_prefix_generation():
        key.generation = wks_prefix(md, key.prefix, key.prefix_len)
        if not key.generation:
            raise MemoryError("wkdsel: digest")
        key.md = md
    trailer[0] = 4
    trailer[1] = 0xFF
    trailer[2] = (hashed_end >> 24) & 0xFF
    trailer[3] = (hashed_end >> 16) & 0xFF
    trailer[4] = (hashed_end >> 8) & 0xFF
    trailer[5] = hashed_end & 0xFF
    dlen = wks_finish(hdr, hdr_len, body, body_len, s, hashed_end, trailer, 6, digest)
    if dlen <= 0 or dlen > 64:
        raise MemoryError("wkdsel: digest")
    if digest[0] != s[uend] or digest[1] != s[uend + 1]:
        return None
    cdef bytes out
    cdef uint8_t *o
    if key.algo == 22:
        ed = _ed_sig(s + m, mlen)
        if ed is None:
            return None
        out = PyBytes_FromStringAndSize(NULL, 64 + dlen)
        o = <uint8_t *>PyBytes_AS_STRING(out)
        memcpy(o, PyBytes_AS_STRING(ed), 64)
        memcpy(o + 64, digest, dlen)
        return out
    if mlen < 2:
        return None
    bits = (s[m] << 8) | s[m + 1]
    vlen = (bits + 7) >> 3
    if 2 + vlen != mlen or vlen > key.size:
        return None
    out = PyBytes_FromStringAndSize(NULL, key.size + dlen)
    o = <uint8_t *>PyBytes_AS_STRING(out)
    memset(o, 0, key.size - vlen)
    memcpy(o + key.size - vlen, s + m + 2, vlen)
    memcpy(o + key.size, digest, dlen)
    return out


cdef object _rsa_key(const uint8_t *b, Py_ssize_t end):
    """The RsaKey of a v4 RSA key body ``key_plain`` accepted, None when ``RSAPublicNumbers`` refuses it."""
    cdef Py_ssize_t pos = 6, nlen, elen
    cdef const uint8_t *n
    cdef const uint8_t *e
    nlen = ((((<Py_ssize_t>b[pos]) << 8) | b[pos + 1]) + 7) >> 3
    n = b + pos + 2
    pos += 2 + nlen
    elen = ((((<Py_ssize_t>b[pos]) << 8) | b[pos + 1]) + 7) >> 3
    e = b + pos + 2
    while nlen and n[0] == 0:
        n += 1
        nlen -= 1
    while elen and e[0] == 0:
        e += 1
        elen -= 1
    if nlen == 0 or (nlen == 1 and n[0] < 3) or elen == 0 or (elen == 1 and e[0] < 3) or not e[elen - 1] & 1:
        return None  # n >= 3, e >= 3 and odd
    if elen > nlen or (elen == nlen and memcmp(e, n, nlen) >= 0):
        return None  # e < n
    cdef RsaKey key = RsaKey.__new__(RsaKey)
    key.key = wks_rsa_new(n, nlen, e, elen)
    if key.key == NULL:
        raise MemoryError("wkdsel: RSA key")
    key.n = PyBytes_FromStringAndSize(<const char *>n, nlen)
    key.e = PyBytes_FromStringAndSize(<const char *>e, elen)
    key.size = nlen
    return key


def plain_cert(bytes data, bytes known):
    """The selection inputs of a certificate of the common shape, else None (see the twin)."""
    if PyBytes_GET_SIZE(known) < 128:
        raise ValueError("known must have 128 octets")
    cdef const uint8_t *k = <const uint8_t *>PyBytes_AS_STRING(known)
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data), pos = 0, start, size = 0, body_at, body_len
    cdef int tag = 0
    if end == 0:
        return None
    start = _next_packet(b, end, 0, &tag, &size)
    if start < 0 or tag != 6 or size < 6 or size > 0xFFFF or b[start] != 4:
        return None
    cdef int algo = b[start + 5]
    if (algo != 1 and algo != 3 and algo != 22) or not _key_plain(b + start, size):
        return None
    cdef _Key key
    cdef object material
    cdef Py_ssize_t oid_len, point_at
    if algo == 22:
        oid_len = b[start + 6]
        point_at = start + 7 + oid_len
        if ((((<Py_ssize_t>b[point_at]) << 8) | b[point_at + 1]) + 7) >> 3 != 33:
            return None
        material = PyBytes_FromStringAndSize(<const char *>b + point_at + 3, 32)
        key.size = 0
    else:
        material = _rsa_key(b + start, size)
        if material is None:
            return None
        key.size = (<RsaKey>material).size
    cdef bytes prefix = PyBytes_FromStringAndSize(NULL, size + 3)
    cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(prefix)
    p[0] = 0x99
    p[1] = size >> 8
    p[2] = size & 0xFF
    memcpy(p + 3, b + start, size)
    key.prefix = p
    key.prefix_len = size + 3
    key.algo = algo
    key.md = -1
    key.generation = 0
    if not wks_sha1(p, size + 3, key.fpr):
        raise MemoryError("wkdsel: SHA-1")
    cdef long long created = _be32(b + start + 1)
    cdef uint8_t hdr[6]
    cdef Py_ssize_t hlen = _header(hdr, 6, size)
    cdef bytes key_packet = PyBytes_FromStringAndSize(NULL, hlen + size)
    memcpy(<uint8_t *>PyBytes_AS_STRING(key_packet), hdr, hlen)
    memcpy(<uint8_t *>PyBytes_AS_STRING(key_packet) + hlen, b + start, size)
    cdef list uids = [], subkeys = []
    cdef int kind = 0, sigs = 0  # kind: 0 before any User ID or subkey, 13, 14, 17 (dropped)
    cdef Py_ssize_t sig_at = 0, sig_len = 0
    body_at = body_len = 0
    pos = start + size
    while True:
        if pos < end:
            start = _next_packet(b, end, pos, &tag, &size)
            if start < 0:
                return None
            pos = start + size
            if tag == 2:
                if kind == 0:
                    return None  # a direct-key signature or key revocation
                sigs += 1
                sig_at, sig_len = start, size
                continue
            if tag != 13 and tag != 14 and tag != 17:
                return None
        else:
            tag = -1
        if kind == 13 or kind == 14:
            if sigs != 1:
                return None
            got = _group(&key, b, kind, body_at, body_len, sig_at, sig_len, created, k)
            if got is None:
                return None
            (uids if kind == 13 else subkeys).append(got)
        if tag < 0:
            break
        kind, sigs, body_at, body_len = tag, 0, start, size
    cdef char hexed[40]
    cdef const char *digits = b"0123456789ABCDEF"
    cdef int i
    for i in range(20):
        hexed[2 * i] = digits[key.fpr[i] >> 4]
        hexed[2 * i + 1] = digits[key.fpr[i] & 15]
    return PyUnicode_DecodeASCII(hexed, 40, NULL), created, material, key_packet, uids, subkeys


cdef object _group(_Key *key, const uint8_t *b, int kind, Py_ssize_t at, Py_ssize_t n, Py_ssize_t sig_at,
                   Py_ssize_t sig_n, long long created, const uint8_t *known):
    """The tuple of one User ID or subkey with its one signature (see the twin); None: not plain."""
    cdef _SigState st
    cdef Py_ssize_t hashed_end = 0, uend
    cdef const uint8_t *s = b + sig_at
    cdef uint8_t hdr[5]
    cdef object check = None
    try:
        uend = _sig_scan(s, sig_n, known, &st, &hashed_end)
    except ValueError:
        return None
    cdef int md = wks_md_index(s[3]), sig_type = s[1]
    if md < 0:
        return None
    if kind == 13:
        if 0x10 <= sig_type <= 0x13 and st.created >= created:
            if st.has_key_exp:
                return None
            hdr[0] = 0xB4
            hdr[1] = (n >> 24) & 0xFF
            hdr[2] = (n >> 16) & 0xFF
            hdr[3] = (n >> 8) & 0xFF
            hdr[4] = n & 0xFF
            check = _check(key, s, sig_n, &st, hashed_end, uend, md, hdr, 5, b + at, n)
        return (
            _plain_address(b + at, n), PyBytes_FromStringAndSize(<const char *>b + at, n), check,
            st.created, st.expires, bool(st.primary), _two_packets(b, 13, at, n, sig_at, sig_n),
        )
    if n < 6 or n > 0xFFFF or b[at] != 4 or not _key_plain(b + at, n):
        return None
    if sig_type == 0x18:
        hdr[0] = 0x99
        hdr[1] = n >> 8
        hdr[2] = n & 0xFF
        check = _check(key, s, sig_n, &st, hashed_end, uend, md, hdr, 3, b + at, n)
    return (
        check, <long long>_be32(b + at + 1), st.created, st.expires, st.key_exp if st.has_key_exp else 0,
        _two_packets(b, 14, at, n, sig_at, sig_n),
    )
