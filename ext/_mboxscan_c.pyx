"""Native literal search for mbox scanning (twin: ``engine._mboxscan_py``; see there for the contract).

``memchr`` finds each candidate first byte (vectorized in the C library), ``memcmp`` checks the rest.
The GIL is kept: a search spans one message (some microseconds), and handing the GIL to another thread
and back would cost more than it lets run.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.string cimport memchr, memcmp


def features() -> dict:
    """What this implementation is: ``{"native": True}``."""
    return {"native": True}


cdef Py_ssize_t _find(const unsigned char *b, Py_ssize_t size, const unsigned char *n, Py_ssize_t nlen,
                      Py_ssize_t start) noexcept nogil:
    cdef Py_ssize_t last = size - nlen  # the last offset where the needle fits
    cdef const unsigned char *q
    cdef unsigned char first = n[0]
    while start <= last:
        q = <const unsigned char *>memchr(b + start, first, <size_t>(last - start + 1))
        if q == NULL:
            return -1
        start = q - b
        if nlen == 1 or (q[1] == n[1] and memcmp(q + 1, n + 1, <size_t>(nlen - 1)) == 0):  # q[1]: no call
            return start
        start += 1
    return -1


def find(data, bytes needle not None, Py_ssize_t start) -> int:
    """Offset of ``needle`` in ``data`` at or after ``start``; -1 when there is none (see the twin)."""
    cdef Py_buffer view
    cdef Py_ssize_t nlen = len(needle), found
    cdef const unsigned char *n = <const unsigned char *>needle
    if nlen == 0:
        raise ValueError("find: empty needle")
    if start < 0:
        raise ValueError("find: negative start")
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        found = _find(<const unsigned char *>view.buf, view.len, n, nlen, start)
    finally:
        PyBuffer_Release(&view)
    return found
