"""Native WKD kernel: z-base-32, SHA-1 and the WKD local-part hash (twin: ``engine._wkd_py``).

``wkd_hashes`` runs one C loop over all items: each str is read through its cached UTF-8 form
(``PyUnicode_AsUTF8AndSize``), hashed with ASCII-only lower-casing, and the 32-character result
is written straight into a new ASCII str object. For the worker's files of a WKD build,
``create_files`` makes a batch of new files below one open directory with ``openat``/``write``/``close``
and ``entry_texts`` formats their manifest entries.
"""

import os

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from libc.errno cimport EEXIST, EINTR, errno
from libc.stdint cimport uint8_t


cdef extern from "<fcntl.h>" nogil:
    int openat(int dir_fd, const char *path, int flags, ...)
    int O_WRONLY
    int O_CREAT
    int O_EXCL
    int O_NOFOLLOW
    int O_CLOEXEC


cdef extern from "<unistd.h>" nogil:
    ssize_t write(int fd, const void *buf, size_t n)
    int close(int fd)


cdef extern from "Python.h":
    # Declared with raw pointers so the reference stealing of PyList_SET_ITEM stays explicit.
    PyObject *PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar) except NULL
    void *PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    void PyList_SET_ITEM(object lst, Py_ssize_t i, PyObject *item)
    object PyList_New(Py_ssize_t n)
    object PySequence_Fast(object o, const char *msg)
    Py_ssize_t PySequence_Fast_GET_SIZE(object o)
    PyObject *PySequence_Fast_GET_ITEM(object o, Py_ssize_t i)
    bint PyUnicode_Check(object o)
    bint PyBytes_CheckExact(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    object PyUnicode_EncodeFSDefault(object o)
    int PyErr_CheckSignals() except -1


cdef extern from "sha1.h" nogil:
    ctypedef void (*pgpb_sha1_compress_fn)(unsigned int *state, const uint8_t *blocks, size_t nblocks)
    int PGPB_SHA1_AUTO
    int PGPB_SHA1_PORTABLE
    int PGPB_SHA1_SHA_NI
    int pgpb_sha1_has_sha_ni()
    pgpb_sha1_compress_fn pgpb_sha1_select(int backend)
    const char *pgpb_sha1_auto_name()
    void pgpb_sha1(pgpb_sha1_compress_fn compress, const uint8_t *data, size_t n, uint8_t *out)
    void pgpb_sha1_ascii_lower(pgpb_sha1_compress_fn compress, const uint8_t *data, size_t n, uint8_t *out)


cdef extern from "zbase32.h" nogil:
    int PGPB_ZB32_OK
    int PGPB_ZB32_BAD_CHAR
    int PGPB_ZB32_BAD_LENGTH
    size_t pgpb_zb32_encoded_len(size_t n)
    size_t pgpb_zb32_decoded_len(size_t n)
    void pgpb_zb32_encode(const uint8_t *data, size_t n, char *out)
    void pgpb_zb32_encode20(const uint8_t *data, char *out)
    int pgpb_zb32_decode(const char *text, size_t n, uint8_t *out, size_t *err_pos)


cdef pgpb_sha1_compress_fn _compress = pgpb_sha1_select(PGPB_SHA1_AUTO)

cdef inline object _adopt(PyObject *ref):
    """Turn a new (owned) reference into a Python object without leaking it."""
    obj = <object>ref  # the cast takes a second reference
    Py_DECREF(obj)
    return obj


_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_BACKENDS = {"auto": PGPB_SHA1_AUTO, "portable": PGPB_SHA1_PORTABLE, "sha_ni": PGPB_SHA1_SHA_NI}


def features() -> dict:
    """What this build and CPU use: ``{"native": True, "sha_ni": bool, "sha1": "sha_ni"|"portable"}``."""
    return {"native": True, "sha_ni": bool(pgpb_sha1_has_sha_ni()), "sha1": pgpb_sha1_auto_name().decode()}


cdef pgpb_sha1_compress_fn _backend(str backend) except NULL:
    code = _BACKENDS.get(backend)
    if code is None:
        raise ValueError(f"unknown SHA-1 backend {backend!r}; expected one of {sorted(_BACKENDS)}")
    cdef pgpb_sha1_compress_fn fn = pgpb_sha1_select(code)
    if fn is NULL:
        raise ValueError(f"SHA-1 backend {backend!r} is not available on this CPU")
    return fn


def sha1(data, str backend="auto") -> bytes:
    """SHA-1 digest of a bytes-like object; ``backend`` ("auto", "portable", "sha_ni") is for tests."""
    cdef pgpb_sha1_compress_fn fn = _backend(backend)
    cdef Py_buffer view
    cdef uint8_t digest[20]
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            pgpb_sha1(fn, <const uint8_t *>view.buf, <size_t>view.len, digest)
    finally:
        PyBuffer_Release(&view)
    return PyBytes_FromStringAndSize(<char *>digest, 20)


def zbase32_encode(data) -> str:
    """z-base-32 of a bytes-like object: ceil(8n/5) characters, zero-filled last character."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len > (<Py_ssize_t>1 << 60):
            raise OverflowError("input too large for z-base-32")
        nchars = <Py_ssize_t>pgpb_zb32_encoded_len(<size_t>view.len)
        out = _adopt(PyUnicode_New(nchars, 127))
        pgpb_zb32_encode(<const uint8_t *>view.buf, <size_t>view.len, <char *>PyUnicode_DATA(out))
        return out
    finally:
        PyBuffer_Release(&view)


def zbase32_decode(str text) -> bytes:
    """Bytes of a z-base-32 string; ValueError (with the position) for anything encode never emits."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef size_t pos = 0
    cdef int rc
    if not PyUnicode_IS_ASCII(text):
        for i, ch in enumerate(text):  # always raises: the alphabet is ASCII
            if ch not in _ALPHABET:
                raise ValueError(f"invalid z-base-32 character {ch!r} at position {i}")
    out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>pgpb_zb32_decoded_len(<size_t>n))
    rc = pgpb_zb32_decode(<const char *>PyUnicode_DATA(text), <size_t>n,
                          <uint8_t *>PyBytes_AS_STRING(out), &pos)
    if rc == PGPB_ZB32_OK:
        return out
    if rc == PGPB_ZB32_BAD_CHAR:
        raise ValueError(f"invalid z-base-32 character {text[pos]!r} at position {pos}")
    if rc == PGPB_ZB32_BAD_LENGTH:
        raise ValueError(f"invalid z-base-32 length {n}: no whole number of bytes encodes to it")
    raise ValueError(f"non-zero unused bits in the last z-base-32 character at position {pos}")


cdef PyObject *_hash_one(object item) except NULL:
    """New reference to the 32-character WKD hash of one str or bytes-like item."""
    cdef const char *p
    cdef Py_ssize_t n
    cdef uint8_t digest[20]
    cdef Py_buffer view
    cdef PyObject *res
    if PyUnicode_Check(item):
        p = PyUnicode_AsUTF8AndSize(item, &n)
        pgpb_sha1_ascii_lower(_compress, <const uint8_t *>p, <size_t>n, digest)
    elif PyBytes_CheckExact(item):
        pgpb_sha1_ascii_lower(_compress, <const uint8_t *>PyBytes_AS_STRING(item),
                              <size_t>PyBytes_GET_SIZE(item), digest)
    else:
        try:
            PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
        except TypeError:
            raise TypeError(f"local part must be str or bytes-like, not {type(item).__name__}") from None
        pgpb_sha1_ascii_lower(_compress, <const uint8_t *>view.buf, <size_t>view.len, digest)
        PyBuffer_Release(&view)
    res = PyUnicode_New(32, 127)
    pgpb_zb32_encode20(digest, <char *>PyUnicode_DATA(<object>res))
    return res


def wkd_hash(local_part) -> str:
    """z-base-32(SHA-1(local part with ASCII A-Z lower-cased)); a str is UTF-8 encoded first."""
    return _adopt(_hash_one(local_part))


def wkd_hashes(items) -> list:
    """``[wkd_hash(x) for x in items]`` in one C loop."""
    if isinstance(items, (str, bytes, bytearray, memoryview)):
        raise TypeError("wkd_hashes expects an iterable of local parts, not a single one")
    seq = PySequence_Fast(items, "wkd_hashes expects an iterable of str or bytes")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef Py_ssize_t i
    out = PyList_New(n)
    for i in range(n):
        PyList_SET_ITEM(out, i, _hash_one(<object>PySequence_Fast_GET_ITEM(seq, i)))
    return out


cdef int _NEW_FILE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC


cdef int _open_new(int dir_fd, const char *path, object name) except? -2:
    """A descriptor of the new file ``path`` (``name`` encoded) below ``dir_fd``, or -1 when it exists;
    OSError otherwise (EINTR retried after the signal handlers ran, as ``os.open`` does)."""
    cdef int fd, err
    while True:
        with nogil:
            fd = openat(dir_fd, path, _NEW_FILE, 0o644)
            err = errno
        if fd >= 0:
            return fd
        if err == EEXIST:
            return -1
        if err != EINTR:
            raise OSError(err, os.strerror(err), name)
        PyErr_CheckSignals()


cdef void _write_all(int fd, const char *data, Py_ssize_t size, object name) except *:
    """Write ``size`` bytes to ``fd`` (short writes continued, EINTR retried); OSError on failure."""
    cdef ssize_t done
    cdef int err
    while size > 0:
        with nogil:
            done = write(fd, data, <size_t>size)
            err = errno
        if done >= 0:
            data += done
            size -= done
        elif err == EINTR:
            PyErr_CheckSignals()
        else:
            raise OSError(err, os.strerror(err), name)


def create_files(int dir_fd, rows, Py_ssize_t name_at, Py_ssize_t data_at) -> list:
    """Create, below the open directory ``dir_fd``, the file ``row[name_at]`` (str) holding
    ``row[data_at]`` (bytes-like) for each row of ``rows``: ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode
    0644 (less the umask), one ``write``. Returns the indexes of the rows whose file existed already,
    in order; any other failure raises OSError (the files made before it stay)."""
    seq = PySequence_Fast(rows, "create_files expects a sequence of rows")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef Py_ssize_t i
    cdef int fd
    cdef Py_buffer view
    taken = []
    for i in range(n):
        row = <object>PySequence_Fast_GET_ITEM(seq, i)
        name = row[name_at]
        encoded = PyUnicode_EncodeFSDefault(name) if PyUnicode_Check(name) else os.fsencode(name)
        if b"\0" in encoded:
            raise ValueError("embedded null byte")
        PyObject_GetBuffer(row[data_at], &view, PyBUF_SIMPLE)
        try:
            fd = _open_new(dir_fd, PyBytes_AS_STRING(encoded), name)
            if fd < 0:
                taken.append(i)
                continue
            try:
                _write_all(fd, <const char *>view.buf, view.len, name)
            finally:
                close(fd)
        finally:
            PyBuffer_Release(&view)
    return taken


cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    Py_UCS4 PyUnicode_READ(int kind, void *data, Py_ssize_t index)


_METHOD_PATHS = {"advanced": 0, "direct": 1, "both": 2}


cdef bint _plain_json(object text):
    """True when ``text`` is a str JSON writes as it is: no control character, ``"`` or ``\\``."""
    cdef int kind
    cdef void *data
    cdef Py_ssize_t i, n
    cdef Py_UCS4 ch
    if not PyUnicode_Check(text):
        return False
    kind = PyUnicode_KIND(text)
    data = PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    for i in range(n):
        ch = PyUnicode_READ(kind, data, i)
        if ch < 0x20 or ch == 0x22 or ch == 0x5C:
            return False
    return True


def entry_texts(str method, rows, shas) -> list:
    """The manifest entry, as the JSON text ``json`` writes (``ensure_ascii=False``), of a file holding
    one key for each row ``(domain, hash, local, address, fingerprint, created, data, status)`` whose
    file has the SHA-256 ``shas[i]`` (hex): keys in the order of :func:`engine.wkd.tree.entry_text`,
    paths per ``method``. None for a row whose address is no str or one JSON escapes (a control
    character, ``"``, ``\\``): the caller encodes that one. The other fields go in as they are: the local
    part and the domain are the address's, the rest hex, z-base-32, a number or a status word."""
    code = _METHOD_PATHS.get(method)
    if code is None:
        raise ValueError(f"unknown method {method!r}")
    seq = PySequence_Fast(rows, "entry_texts expects a sequence of rows")
    hexes = PySequence_Fast(shas, "entry_texts expects a sequence of SHA-256 digests")
    cdef Py_ssize_t i, n = PySequence_Fast_GET_SIZE(seq)
    if PySequence_Fast_GET_SIZE(hexes) != n:
        raise ValueError("entry_texts: one SHA-256 per row expected")
    out = []
    for i in range(n):
        domain, hashed, local, address, fpr, created, _, status = <object>PySequence_Fast_GET_ITEM(seq, i)
        sha = <object>PySequence_Fast_GET_ITEM(hexes, i)
        if not _plain_json(address):
            out.append(None)  # the caller encodes this one
            continue
        if code == 0:
            paths = f'"advanced": "{domain}/hu/{hashed}"'
        elif code == 1:
            paths = f'"direct": "hu/{hashed}"'
        else:
            paths = f'"advanced": "{domain}/hu/{hashed}", "direct": "hu/{hashed}"'
        out.append(
            f'{{"address": "{address}", "domain": "{domain}", "local": "{local}", "hash": "{hashed}", '
            f'"fingerprints": ["{fpr}"], "created": [{int(created)}], "status": ["{status}"], '
            f'"sha256": "{sha}", "paths": {{{paths}}}}}'
        )
    return out
