"""Native Ed25519 verification (twin: ``engine._ed25519_py``; see there for the contract).

The arithmetic is in ``csrc/ed25519.c`` (SHA-512 and scalars mod L from OpenSSL's libcrypto); it keeps
state in static buffers, so these functions hold the GIL throughout.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t


cdef extern from "ed25519.h":
    int ED_MAX_BATCH
    int ed_init()
    int ed_verify_one(const uint8_t *key, const uint8_t *check, size_t len)
    int ed_verify_batch(const uint8_t *key, const uint8_t *const *checks, const size_t *lens, size_t n)


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


def verify_batch(bytes key, list checks) -> bool:
    """True when every check is valid under ``key`` (one equation, random 128-bit weights, the first 1);
    False when any is not (or ``checks`` is empty)."""
    cdef Py_ssize_t n = len(checks), i
    cdef const uint8_t *ptrs[64]
    cdef size_t lens[64]
    cdef bytes check
    cdef int got
    if PyBytes_GET_SIZE(key) != 32 or n == 0:
        return False
    if n > ED_MAX_BATCH or n > 64:  # rare: split, each part with its own weights
        half = n // 2
        return verify_batch(key, checks[:half]) and verify_batch(key, checks[half:])
    for i in range(n):
        check = checks[i]
        ptrs[i] = <const uint8_t *>PyBytes_AS_STRING(check)
        lens[i] = <size_t>PyBytes_GET_SIZE(check)
    got = ed_verify_batch(<const uint8_t *>PyBytes_AS_STRING(key), ptrs, lens, <size_t>n)
    return got == 1  # -1: no randomness (getrandom failed); False sends the caller to verify_one
