"""Native byte-level passes over a message of an archive job (twin: ``engine._mailpass_py``; see there
for the contract). Every read is bounds-checked against the buffer's length; a malformed header section
raises ``ValueError(reason, offset)``."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.type cimport PyType_IsSubtype
from libc.errno cimport EINTR, errno
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memmove
from posix.unistd cimport pread


cdef extern from "Python.h":
    str PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)
    void Py_SET_SIZE(object o, Py_ssize_t size)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


cdef extern from *:
    """
    /* A 4-item instance of the tuple subclass cls, made as CPython's tuple_subtype_new makes it (the
       type's allocator, then the items), without the plain tuple that tuple.__new__ copies from. */
    static PyObject *mailpass_tuple4(PyObject *cls, PyObject *a, PyObject *b, PyObject *c, PyObject *d) {
        PyTypeObject *type = (PyTypeObject *)cls;
        PyObject *t = type->tp_alloc(type, 4);
        if (t == NULL)
            return NULL;
        Py_INCREF(a); PyTuple_SET_ITEM(t, 0, a);
        Py_INCREF(b); PyTuple_SET_ITEM(t, 1, b);
        Py_INCREF(c); PyTuple_SET_ITEM(t, 2, c);
        Py_INCREF(d); PyTuple_SET_ITEM(t, 3, d);
        return t;
    }
    """
    object mailpass_tuple4(object cls, object a, object b, object c, object d)


cdef extern from *:
    """
    /* The first line start i in [from, end) (from >= 1) whose line begins with "F" or ">" (b[i - 1] is
       a line feed), or end: 16 bytes at a time with the compiler's vector extension (SSE2 on x86-64),
       where a memchr per line costs a call for every line of the message. */
    typedef unsigned char mailpass_v16 __attribute__((vector_size(16)));
    static Py_ssize_t mailpass_next_mark(const unsigned char *b, Py_ssize_t from, Py_ssize_t end) {
        const mailpass_v16 none = {0};
        const mailpass_v16 lf = none + 0x0A, big_f = none + 0x46, gt = none + 0x3E;
        Py_ssize_t i = from;
        for (; i + 16 <= end; i += 16) {
            mailpass_v16 cur, prev, hit;
            unsigned long long w[2];
            memcpy(&cur, b + i, 16);
            memcpy(&prev, b + i - 1, 16);
            hit = (mailpass_v16)((prev == lf) & ((cur == big_f) | (cur == gt)));
            memcpy(w, &hit, 16);
            if (w[0] | w[1])
                break;  /* a candidate in these 16: the loop below finds it */
        }
        for (; i < end; i++)
            if (b[i - 1] == 0x0A && (b[i] == 0x46 || b[i] == 0x3E))
                return i;
        return end;
    }
    """
    Py_ssize_t mailpass_next_mark(const unsigned char *b, Py_ssize_t start, Py_ssize_t end) nogil


def features() -> dict:
    """What this implementation is: ``{"native": True}``."""
    return {"native": True}


cdef inline bint _name_char(unsigned char c) noexcept nogil:
    return 0x21 <= c <= 0x7E and c != 0x3A  # printable, not ":" (RFC 5322 ftext)


def split(bytes raw not None) -> tuple:
    """``(header_end, body_start)`` of a message (see the twin)."""
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i, p = 0
    cdef const unsigned char *nl
    if n >= 2 and b[0] == 0x0D and b[1] == 0x0A:
        return 0, 2
    if n >= 1 and b[0] == 0x0A:
        return 0, 1
    while p < n:
        nl = <const unsigned char *>memchr(b + p, 0x0A, n - p)
        if nl == NULL:
            break
        i = nl - b
        if i + 1 < n and b[i + 1] == 0x0A:
            return i + 1, i + 2
        if i + 2 < n and b[i + 1] == 0x0D and b[i + 2] == 0x0A:
            return i + 1, i + 3
        p = i + 1
    return n, n


cdef Py_ssize_t _colon(const unsigned char *b, Py_ssize_t p, Py_ssize_t end, Py_ssize_t *name_end) noexcept nogil:
    """Where the colon of the field line at ``p`` is (the name ends at ``name_end``), or -1."""
    cdef Py_ssize_t q = p
    while q < end and _name_char(b[q]):
        q += 1
    if q == p:
        return -1
    name_end[0] = q
    while q < end and (b[q] == 0x20 or b[q] == 0x09):
        q += 1
    if q < end and b[q] == 0x3A:
        return q
    return -1


cdef enum:
    _NAME_SLOTS = 64  # names remembered (a message has a dozen fields, mostly the same few names)
    _NAME_MAX = 40  # longer names are not remembered
cdef list _names = [None] * _NAME_SLOTS  # each slot: a lowercased name made before, or None


cdef str _name(const unsigned char *b, Py_ssize_t start, Py_ssize_t stop):
    """The name ``b[start:stop]`` (ASCII) lowercased: the same str as last time for a name seen before
    (a string made and freed for every field of every message costs more than the lookup)."""
    cdef Py_ssize_t i, n = stop - start
    cdef unsigned char c
    cdef unsigned char low[_NAME_MAX]
    cdef unsigned int h = <unsigned int>n
    cdef str name
    cdef unsigned char *out
    if n <= _NAME_MAX:
        for i in range(n):
            c = b[start + i]
            low[i] = c + 32 if 0x41 <= c <= 0x5A else c
            h = h * 31 + low[i]
        h %= _NAME_SLOTS
        cached = _names[h]
        if cached is not None and PyUnicode_GET_LENGTH(cached) == n and memcmp(PyUnicode_DATA(cached), low, n) == 0:
            return <str>cached
    name = PyUnicode_New(n, 127)
    out = <unsigned char *>PyUnicode_DATA(name)
    if n <= _NAME_MAX:
        memcpy(out, low, n)
        _names[h] = name
        return name
    for i in range(n):
        c = b[start + i]
        out[i] = c + 32 if 0x41 <= c <= 0x5A else c
    return name


def fields(bytes raw not None, Py_ssize_t header_end, type cls not None) -> list:
    """The fields of ``raw[:header_end]`` as ``cls`` tuples ``(name, start, end, colon)`` (see the twin)."""
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t start = 0, colon, name_end = 0, nxt, nxt_end = 0, p, ls
    cdef const unsigned char *nl
    cdef list out = []
    if not PyType_IsSubtype(cls, tuple):
        raise TypeError("cls must be a subclass of tuple")
    if header_end > n:
        header_end = n
    if header_end <= 0:
        return out
    if b[0] == 0x20 or b[0] == 0x09:
        raise ValueError("header continuation line before any field", 0)
    colon = _colon(b, 0, header_end, &name_end)
    if colon < 0:
        raise ValueError("header line is not a field", 0)
    p = colon
    while True:
        nl = <const unsigned char *>memchr(b + p, 0x0A, header_end - p)
        if nl == NULL:
            break
        ls = nl - b + 1
        if ls >= header_end:
            break
        if b[ls] == 0x20 or b[ls] == 0x09:  # a continuation line
            p = ls
            continue
        nxt = _colon(b, ls, header_end, &nxt_end)
        if nxt < 0:
            raise ValueError("header line is not a field", ls)
        out.append(mailpass_tuple4(cls, _name(b, start, name_end), start, ls, colon))
        start, colon, name_end, p = ls, nxt, nxt_end, nxt
    out.append(mailpass_tuple4(cls, _name(b, start, name_end), start, header_end, colon))
    return out


cdef inline Py_ssize_t _from_line(const unsigned char *b, Py_ssize_t p, Py_ssize_t end) noexcept nogil:
    """At the line start ``p``: the number of ``>`` before ``From `` when the line is ``>*From `` (all of
    it before ``end``), else -1."""
    cdef Py_ssize_t q = p
    while q < end and b[q] == 0x3E:
        q += 1
    if end - q >= 5 and memcmp(b + q, b"From ", 5) == 0:
        return q - p
    return -1


cdef Py_ssize_t *_from_lines(const unsigned char *b, Py_ssize_t end, bint quoted, Py_ssize_t *count) except? NULL:
    """Line starts before ``end`` that are ``>*From `` lines (``quoted``: ``>+From `` ones), in order; a
    malloc'd array the caller frees (NULL when there are none). Only the lines that start with ``F`` or
    ``>`` are looked at (:c:func:`mailpass_next_mark` skips the others 16 bytes at a time)."""
    cdef Py_ssize_t *found = NULL
    cdef Py_ssize_t *grown
    cdef Py_ssize_t cap = 0, k = 0, p = 0, depth
    while p < end:
        depth = _from_line(b, p, end)
        if depth > 0 or (depth == 0 and not quoted):
            if k == cap:
                cap = cap * 2 if cap else 16
                grown = <Py_ssize_t *>realloc(found, cap * sizeof(Py_ssize_t))
                if grown == NULL:
                    free(found)
                    raise MemoryError()
                found = grown
            found[k] = p
            k += 1
        p = mailpass_next_mark(b, p + 1, end)
    count[0] = k
    return found


cdef Py_ssize_t _drop_quotes(char *dst, const char *src, Py_ssize_t n, const Py_ssize_t *found,
                             Py_ssize_t k) noexcept nogil:
    """Copy ``src[:n]`` to ``dst`` without the ``>`` at each of the ``k`` offsets ``found`` (``dst`` may
    be ``src``: unquoting in place); returns the length written."""
    cdef Py_ssize_t i, at = 0, out = 0, seg
    for i in range(k):
        seg = found[i] - at
        memmove(dst + out, src + at, seg)
        out += seg
        at = found[i] + 1  # one ">" left out
    memmove(dst + out, src + at, n - at)
    return out + n - at


def unquote(bytes raw not None) -> bytes:
    """mboxrd: remove one ``>`` from every ``>From `` line; ``raw`` itself when there is none."""
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), k = 0
    cdef Py_ssize_t *found = _from_lines(b, n, True, &k)
    cdef bytes out
    if k == 0:
        return raw
    try:
        out = PyBytes_FromStringAndSize(NULL, n - k)
        _drop_quotes(PyBytes_AS_STRING(out), <const char *>b, n, found, k)
        return out
    finally:
        free(found)


def quote_join(bytes head not None, bytes raw not None, Py_ssize_t upto, bytes tail not None) -> bytes:
    """``head + quote(raw[:upto]) + raw[upto:] + tail`` in one copy (see the twin)."""
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), k = 0, i, src = 0, dst, seg
    cdef Py_ssize_t nh = PyBytes_GET_SIZE(head), nt = PyBytes_GET_SIZE(tail)
    cdef Py_ssize_t *found
    cdef bytes out
    cdef char *o
    if upto < 0:
        upto = 0
    if upto > n:
        upto = n
    found = _from_lines(b, upto, False, &k)
    try:
        out = PyBytes_FromStringAndSize(NULL, nh + n + k + nt)
        o = PyBytes_AS_STRING(out)
        memcpy(o, PyBytes_AS_STRING(head), nh)
        dst = nh
        for i in range(k):
            seg = found[i] - src
            memcpy(o + dst, b + src, seg)
            dst += seg
            o[dst] = 0x3E  # one ">" more
            dst += 1
            src = found[i]
        memcpy(o + dst, b + src, n - src)
        dst += n - src
        memcpy(o + dst, PyBytes_AS_STRING(tail), nt)
        return out
    finally:
        free(found)


def pread_unquoted(int fd, Py_ssize_t offset, Py_ssize_t length):
    """The ``length`` bytes at ``offset`` of ``fd`` as :func:`unquote` leaves them, or None when the file
    ends before (see the twin). Read straight into the result and unquoted in place: no second copy."""
    cdef bytes out
    cdef char *buf
    cdef Py_ssize_t got, k = 0
    cdef Py_ssize_t *found
    if length < 0:
        raise ValueError("negative length")
    out = PyBytes_FromStringAndSize(NULL, length)
    buf = PyBytes_AS_STRING(out)
    while True:
        with nogil:
            got = pread(fd, buf, length, offset)
        if got >= 0:
            break
        if errno != EINTR:
            PyErr_SetFromErrno(OSError)
        PyErr_CheckSignals()
    if got != length:
        return None
    found = _from_lines(<const unsigned char *>buf, length, True, &k)
    if k == 0:
        return out
    try:
        _drop_quotes(buf, buf, length, found, k)
    finally:
        free(found)
    # a fresh object no one else has seen: shrunk in place (its allocation keeps k spare bytes)
    buf[length - k] = 0
    Py_SET_SIZE(out, length - k)
    return out
