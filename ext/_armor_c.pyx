# cython: language_level=3
"""Native armor kernels: CRC-24 and line-wrapped base64 with AVX2 / SSSE3 / scalar paths picked at run time.

The functions and their contracts are those of :mod:`engine._armor_py` (the pure-Python twin); decode
errors are ``ValueError(reason, offset)`` with the same reasons and offsets there and here. Inputs of
64 KiB and more are processed without the GIL.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy


cdef extern from "cpu.h":
    int pgpb_cpu_has_ssse3() nogil
    int pgpb_cpu_has_avx2() nogil
    int pgpb_cpu_has_pclmul() nogil
    int pgpb_cpu_has_sha_ni() nogil

cdef extern from "crc24.h":
    void pgpb_crc24_init() nogil
    uint32_t pgpb_crc24(uint32_t crc, const uint8_t *p, size_t n) nogil
    int pgpb_crc24_use_pclmul(int enable) nogil
    int pgpb_crc24_pclmul_active() nogil

cdef extern from "base64_simd.h":
    void pgpb_b64_init() nogil
    int pgpb_b64_set_level(int level) nogil
    int pgpb_b64_level() nogil
    size_t pgpb_b64_lines_len(size_t n, size_t width) nogil
    size_t pgpb_b64_encode_lines(const uint8_t *src, size_t n, uint8_t *dst, size_t width, uint32_t *crc) nogil
    size_t pgpb_b64_encode_plain(const uint8_t *src, size_t n, uint8_t *dst) nogil
    size_t pgpb_b64_decode_bound(size_t n) nogil
    int pgpb_b64_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t *out_len, size_t *consumed,
                        int final, size_t *err_off, uint32_t *crc) nogil

cdef extern from "Python.h":
    PyObject *_new_bytes "PyBytes_FromStringAndSize"(const char *s, Py_ssize_t n) except NULL
    char *_bytes_data "PyBytes_AS_STRING"(PyObject *o)
    int _PyBytes_Resize(PyObject **o, Py_ssize_t n) except -1

CRC24_INIT = 0xB704CE
cdef Py_ssize_t NOGIL_MIN = 65536
cdef tuple _LEVELS = ("scalar", "ssse3", "avx2")

pgpb_crc24_init()
pgpb_b64_init()


cdef uint32_t _crc_arg(object crc) except? 0xFFFFFFFF:
    if not 0 <= crc <= 0xFFFFFF:
        raise ValueError("crc must be a 24-bit value")
    return <uint32_t>crc


cdef size_t _width_arg(object width) except 0:
    if width <= 0 or width % 4:
        raise ValueError("width must be a positive multiple of 4")
    return <size_t>width


def crc24(data, crc=CRC24_INIT) -> int:
    """CRC-24 of ``data`` (any bytes-like object), continuing from ``crc`` (the previous result)."""
    cdef Py_buffer v
    cdef uint32_t c = _crc_arg(crc)
    PyObject_GetBuffer(data, &v, PyBUF_SIMPLE)
    try:
        if v.len >= NOGIL_MIN:
            with nogil:
                c = pgpb_crc24(c, <const uint8_t *>v.buf, <size_t>v.len)
        else:
            c = pgpb_crc24(c, <const uint8_t *>v.buf, <size_t>v.len)
    finally:
        PyBuffer_Release(&v)
    return c


cdef size_t _encode(const uint8_t *src, size_t n, uint8_t *dst, size_t width, uint32_t *crc) noexcept:
    cdef size_t w
    if n >= <size_t>NOGIL_MIN:
        with nogil:
            w = pgpb_b64_encode_lines(src, n, dst, width, crc)
    else:
        w = pgpb_b64_encode_lines(src, n, dst, width, crc)
    return w


def encode_body(data, width=64) -> bytes:
    """Base64 of ``data`` in lines of ``width`` characters, each ending in ``\\n`` (one exact allocation)."""
    cdef Py_buffer v
    cdef size_t w = _width_arg(width)
    cdef bytes out
    PyObject_GetBuffer(data, &v, PyBUF_SIMPLE)
    try:
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>pgpb_b64_lines_len(<size_t>v.len, w))
        _encode(<const uint8_t *>v.buf, <size_t>v.len, <uint8_t *>PyBytes_AS_STRING(out), w, NULL)
    finally:
        PyBuffer_Release(&v)
    return out


def armor_block(data, head, tail, width=64, with_crc=True) -> bytes:
    """``head`` + base64 lines of ``data`` + (``=XXXX\\n`` CRC line) + ``tail`` in one pass and one allocation."""
    cdef Py_buffer v, hv, tv
    cdef size_t w = _width_arg(width)
    cdef size_t body
    cdef bint want_crc = bool(with_crc)
    cdef uint32_t c = 0xB704CE
    cdef uint8_t cb[3]
    cdef uint8_t *p
    cdef bytes out
    PyObject_GetBuffer(head, &hv, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(tail, &tv, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(data, &v, PyBUF_SIMPLE)
            try:
                body = pgpb_b64_lines_len(<size_t>v.len, w)
                out = PyBytes_FromStringAndSize(
                    NULL, hv.len + <Py_ssize_t>body + (6 if want_crc else 0) + tv.len)
                p = <uint8_t *>PyBytes_AS_STRING(out)
                memcpy(p, hv.buf, hv.len)
                p += hv.len
                p += _encode(<const uint8_t *>v.buf, <size_t>v.len, p, w, &c if want_crc else NULL)
                if want_crc:
                    cb[0] = (c >> 16) & 0xFF
                    cb[1] = (c >> 8) & 0xFF
                    cb[2] = c & 0xFF
                    p[0] = b'='
                    pgpb_b64_encode_plain(cb, 3, p + 1)
                    p[5] = b'\n'
                    p += 6
                memcpy(p, tv.buf, tv.len)
            finally:
                PyBuffer_Release(&v)
        finally:
            PyBuffer_Release(&tv)
    finally:
        PyBuffer_Release(&hv)
    return out


def encode_into(data, out, width=64, crc=-1) -> tuple:
    """Encode ``data`` as lines into the writable buffer ``out``; return ``(bytes_written, crc)``.

    ``crc`` continues a CRC-24 over ``data`` in the same pass; -1 skips it (and is returned as is).
    """
    cdef Py_buffer v, ov
    cdef size_t w = _width_arg(width)
    cdef bint want_crc = crc != -1
    cdef uint32_t c = _crc_arg(crc) if want_crc else 0
    cdef size_t n
    PyObject_GetBuffer(out, &ov, PyBUF_WRITABLE)
    try:
        PyObject_GetBuffer(data, &v, PyBUF_SIMPLE)
        try:
            n = pgpb_b64_lines_len(<size_t>v.len, w)
            if n > <size_t>ov.len:
                raise ValueError(f"output buffer too small: need {n} bytes, have {ov.len}")
            n = _encode(<const uint8_t *>v.buf, <size_t>v.len, <uint8_t *>ov.buf, w, &c if want_crc else NULL)
        finally:
            PyBuffer_Release(&v)
    finally:
        PyBuffer_Release(&ov)
    return n, (c if want_crc else -1)


cdef object _decode_error(int rc, const uint8_t *src, size_t off):
    if rc == 1:
        return ValueError(f"invalid base64 character 0x{src[off]:02x}", off)
    if rc == 2:
        return ValueError("misplaced base64 padding '='", off)
    if rc == 3:
        return ValueError("base64 data after padding", off)
    return ValueError("incomplete final base64 group", off)


def decode_chunk(text, final=True, crc=-1) -> tuple:
    """Decode base64 ``text`` ignoring space, tab, CR and LF; return ``(data, consumed, crc)``.

    With ``final`` false the text may end inside a 4-character group, which is left unconsumed.
    ``crc`` continues a CRC-24 over the decoded bytes (-1 skips it). Errors:
    ``ValueError(reason, offset)``.
    """
    cdef Py_buffer v
    cdef bint want_crc = crc != -1
    cdef uint32_t c = _crc_arg(crc) if want_crc else 0
    cdef int fin = bool(final)
    cdef int rc
    cdef size_t out_len = 0, consumed = 0, err_off = 0
    cdef PyObject *res = NULL
    cdef uint8_t *dst
    cdef object result
    PyObject_GetBuffer(text, &v, PyBUF_SIMPLE)
    try:
        res = _new_bytes(NULL, <Py_ssize_t>pgpb_b64_decode_bound(<size_t>v.len))
        dst = <uint8_t *>_bytes_data(res)
        if v.len >= NOGIL_MIN:
            with nogil:
                rc = pgpb_b64_decode(<const uint8_t *>v.buf, <size_t>v.len, dst, &out_len, &consumed, fin,
                                     &err_off, &c if want_crc else NULL)
        else:
            rc = pgpb_b64_decode(<const uint8_t *>v.buf, <size_t>v.len, dst, &out_len, &consumed, fin,
                                 &err_off, &c if want_crc else NULL)
        if rc:
            raise _decode_error(rc, <const uint8_t *>v.buf, err_off)
        _PyBytes_Resize(&res, <Py_ssize_t>out_len)  # frees res and sets it NULL on failure
        result = <object>res
        Py_DECREF(result)
        res = NULL
    finally:
        Py_XDECREF(res)
        PyBuffer_Release(&v)
    return result, consumed, (c if want_crc else -1)


def decode_body(text) -> bytes:
    """Decode a whole base64 body ignoring space, tab, CR and LF; ``ValueError(reason, offset)`` if invalid."""
    return decode_chunk(text, True, -1)[0]


def features() -> dict:
    """CPU features seen and the paths in use, for benchmark tables."""
    return {
        "impl": "native",
        "avx2": bool(pgpb_cpu_has_avx2()),
        "ssse3": bool(pgpb_cpu_has_ssse3()),
        "pclmul": bool(pgpb_cpu_has_pclmul()),
        "sha_ni": bool(pgpb_cpu_has_sha_ni()),
        "base64": _LEVELS[pgpb_b64_level()],
        "crc24": "pclmul" if pgpb_crc24_pclmul_active() else "slicing-by-8",
    }


def _select(base64=None, crc=None) -> dict:
    """Test hook: cap the base64 path ("avx2", "ssse3", "scalar") and pick the CRC path ("pclmul",
    "slicing-by-8"); each is clipped to what the CPU has. Returns :func:`features`."""
    if base64 is not None:
        pgpb_b64_set_level(_LEVELS.index(base64))
    if crc is not None:
        pgpb_crc24_use_pclmul(crc == "pclmul")
    return features()
