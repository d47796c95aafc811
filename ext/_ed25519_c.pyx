"""Native Ed25519 verification (twin: ``engine._ed25519_py``; see there for the contract).

The arithmetic is in ``csrc/ed25519.c`` (SHA-512 and scalars mod L from OpenSSL's libcrypto); it keeps
state in static buffers, so these functions hold the GIL throughout.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t


cdef extern from "ed25519.h":
    int ed_init()
    int ed_verify_one(const uint8_t *key, const uint8_t *check, size_t len)
    int ed_verify_many(const uint8_t *const *keys, const uint8_t *const *checks, const size_t *lens, size_t n,
                       uint8_t *verdicts)
    void ed_many_counts(size_t *equations, size_t *singles)
    int ed_fast_field(int want)


if not ed_init():
    raise ImportError("ed25519: OpenSSL SHA-512 or BIGNUM unavailable")


def features() -> dict:
    """What this implementation is: ``{"native": True}``."""
    return {"native": True}


def verify_one(bytes key, bytes check) -> bool:
    """Is ``check`` (signature R || S, then the message) a valid Ed25519 signature under ``key``?"""
    if PyBytes_GET_SIZE(key) != 32:
        return False
    return ed_verify_one(<const uint8_t *>PyBytes_AS_STRING(key), <const uint8_t *>PyBytes_AS_STRING(check),
                         <size_t>PyBytes_GET_SIZE(check)) == 1


_MANY_CHUNK = 1024  # checks per equation: bounds the kernel's buffers (~5 KiB a check)
_counts = [0, 0]  # equations and single verifications of the last verify_many call


def verify_many(list items) -> list:
    """The verdict of each ``(key, check)`` of ``items`` (keys may differ and repeat), each equal to
    :func:`verify_one`'s: one equation with random 128-bit weights over them all; when it fails, halves
    of the keys are checked in turn down to single keys, whose checks are then verified alone."""
    cdef Py_ssize_t n = len(items), start
    verdicts = [False] * n
    _counts[:] = [0, 0]
    for start in range(0, n, _MANY_CHUNK):
        _many_chunk(items, start, min(n, start + _MANY_CHUNK), verdicts)
    return verdicts


def many_counts() -> tuple:
    """``(equations, single verifications)`` the last :func:`verify_many` call made (tests, benchmarks)."""
    return tuple(_counts)


def _fast_field(bint want) -> bool:
    """Tests: :func:`verify_many`'s field products with mulx/adcx/adox when ``want`` and the CPU has them
    (the default), else in portable C; whether mulx is now in use. Native kernel only."""
    return ed_fast_field(want) == 1


cdef _many_chunk(list items, Py_ssize_t start, Py_ssize_t stop, list verdicts):
    """The verdicts of ``items[start:stop]`` into ``verdicts`` (a key of another length than 32: False)."""
    cdef Py_ssize_t n = stop - start, i, m = 0
    cdef const uint8_t **keys = <const uint8_t **>PyMem_Malloc(n * sizeof(uint8_t *))
    cdef const uint8_t **checks = <const uint8_t **>PyMem_Malloc(n * sizeof(uint8_t *))
    cdef size_t *lens = <size_t *>PyMem_Malloc(n * sizeof(size_t))
    cdef uint8_t *got = <uint8_t *>PyMem_Malloc(n)
    cdef Py_ssize_t *where = <Py_ssize_t *>PyMem_Malloc(n * sizeof(Py_ssize_t))
    cdef bytes key, check
    cdef size_t equations, singles
    try:
        if not (keys and checks and lens and got and where):
            raise MemoryError()
        held = []  # the items' bytes, alive while the kernel reads them
        for i in range(start, stop):
            key, check = items[i]
            if PyBytes_GET_SIZE(key) != 32:
                continue
            held.append((key, check))
            keys[m] = <const uint8_t *>PyBytes_AS_STRING(key)
            checks[m] = <const uint8_t *>PyBytes_AS_STRING(check)
            lens[m] = <size_t>PyBytes_GET_SIZE(check)
            where[m] = i
            m += 1
        if ed_verify_many(keys, checks, lens, <size_t>m, got) == 1:
            for i in range(m):
                verdicts[where[i]] = got[i] == 1
            ed_many_counts(&equations, &singles)
        else:  # no randomness or memory: each alone
            for i in range(m):
                verdicts[where[i]] = ed_verify_one(keys[i], checks[i], lens[i]) == 1
            equations, singles = 0, m
        _counts[0] += equations
        _counts[1] += singles
    finally:
        PyMem_Free(keys)
        PyMem_Free(checks)
        PyMem_Free(lens)
        PyMem_Free(got)
        PyMem_Free(where)
