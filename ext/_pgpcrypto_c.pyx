"""Native OpenPGP symmetric kernel on OpenSSL's libcrypto (twin: ``engine._pgpcrypto_py``).

AES key wrap (RFC 3394) and AES-CFB with the SEIPD v1 MDC (RFC 9580 section 5.13.1), the SHA-1 and the
cipher run over the same 16 KiB piece while it is in cache; whole legacy-ECDH (Curve25519) PKESKs for a
batch of session keys (X25519 by fixed-base tables of the recipient, ``x25519fb.c``, or by PyNaCl's
libsodium; then KDF, key wrap and framing here). Results are written straight into new bytes objects;
inputs are any C-contiguous buffer; the GIL is released for large inputs.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t, uintptr_t
from libc.string cimport memcpy, memset


cdef extern from "openssl/crypto.h" nogil:
    const char *OpenSSL_version(int t)
    int OPENSSL_VERSION
    void OPENSSL_cleanse(void *ptr, size_t len)


cdef extern from "shamb.h" nogil:
    ctypedef struct pgpb_hash_job:
        const uint8_t *data
        size_t len
        uint8_t *digest
    int pgpb_sha_many_native()
    int PGPB_SHA_MAX_LANES


cdef extern from "pgpcrypto.h" nogil:
    ctypedef struct pgpb_cfb:
        pass
    int pgpb_crypto_init()
    int pgpb_aes_key_wrap(const uint8_t *kek, size_t keklen, const uint8_t *data, size_t n, uint8_t *out)
    int pgpb_aes_key_unwrap(const uint8_t *kek, size_t keklen, const uint8_t *data, size_t n, uint8_t *out)
    pgpb_cfb *pgpb_cfb_new(const uint8_t *key, size_t keylen, const uint8_t *iv, int decrypt, int hash)
    void pgpb_cfb_free(pgpb_cfb *s)
    int pgpb_cfb_update(pgpb_cfb *s, const uint8_t *data, size_t n, uint8_t *out, int hash)
    int pgpb_cfb_hash(pgpb_cfb *s, const uint8_t *data, size_t n)
    int pgpb_cfb_mdc_final(pgpb_cfb *s, uint8_t *out)
    int pgpb_cfb_mdc_check(pgpb_cfb *s, const uint8_t *mdc)
    int pgpb_hash_many(int sha256, pgpb_hash_job *jobs, size_t n, int lanes)
    size_t PGPB_PKESK_MAX
    size_t PGPB_PKESK_HEAD_MAX
    size_t pgpb_ecdh25519_pkesk(const uint8_t *shared, const uint8_t *eph, const uint8_t *param, size_t paramlen,
                                const uint8_t *head, size_t headlen, int kdf_hash, size_t keklen, int cipher,
                                const uint8_t *key, size_t keylen, uint8_t *out)


cdef extern from "x25519fb.h" nogil:
    ctypedef struct x25519fb_table:
        pass
    int x25519fb_init()
    x25519fb_table *x25519fb_table_new(const uint8_t *u)
    void x25519fb_table_free(x25519fb_table *table)
    void x25519fb_agree_many(uint8_t *shared, uint8_t *eph, uint8_t *ok, const x25519fb_table *table,
                             const uint8_t **secrets, size_t n)


cdef extern from "cfbmb.h" nogil:
    ctypedef struct pgpb_cfb_job:
        const uint8_t *key
        size_t keylen
        uint8_t *data
        size_t len
    int pgpb_cfb_many_native()


cdef extern from "pgpcrypto.h" nogil:
    int pgpb_cfb_mdc_many(pgpb_cfb_job *jobs, pgpb_hash_job *mdcs, size_t n)


if not pgpb_crypto_init():
    raise ImportError("libcrypto lacks AES-CFB, AES key wrap or SHA-1")
if not x25519fb_init():
    raise ImportError("X25519 base point table: out of memory")

cdef Py_ssize_t BLOCK = 16
cdef Py_ssize_t MDC_LEN = 22
cdef Py_ssize_t NOGIL_ABOVE = 1 << 16


def features() -> dict:
    """What this build uses: ``{"native": True, "backend": "OpenSSL 3.0.x ...", "multi_buffer": True,
    "multi_hash": True}`` (``multi_buffer``: :func:`cfb_encrypt_mdc_many` interleaves messages with AES-NI;
    ``multi_hash``: :func:`sha1_many` / :func:`sha256_many` and the MDCs interleave them with SHA-NI)."""
    return {"native": True, "backend": OpenSSL_version(OPENSSL_VERSION).decode(),
            "multi_buffer": bool(pgpb_cfb_many_native()), "multi_hash": bool(pgpb_sha_many_native())}


cdef inline int _check_key(Py_ssize_t n, str what) except -1:
    if n != 16 and n != 24 and n != 32:
        raise ValueError(f"{what} must be an AES key of 16, 24 or 32 octets, got {n}")
    return 0


cdef inline uint8_t *_out(bytes b):
    return <uint8_t *>PyBytes_AS_STRING(b)


cdef class _Buf:
    """A held PyBUF_SIMPLE view of a bytes-like object (released on collection)."""

    cdef Py_buffer view
    cdef bint held

    def __cinit__(self, object obj, bint writable=False):
        PyObject_GetBuffer(obj, &self.view, PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
        self.held = True

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)

    cdef inline const uint8_t *ptr(self):
        return <const uint8_t *>self.view.buf


# --- SHA-1 and SHA-256 of many buffers ----------------------------------------------------------------


cdef list _digests(items, int sha256, int lanes):
    """The digest of every buffer of ``items`` as new bytes objects: ``lanes`` buffers at a time on
    SHA-NI (0: the default, ``shamb.c``), -1 or without SHA-NI one by one in libcrypto (``shamb.h``)."""
    cdef list bufs = [_Buf(item) for item in items]
    cdef Py_ssize_t n = len(bufs), i, size = 32 if sha256 else 20
    cdef list outs = [PyBytes_FromStringAndSize(NULL, size) for i in range(n)]
    cdef _Buf b
    cdef int rc
    cdef pgpb_hash_job *jobs = <pgpb_hash_job *>PyMem_Malloc((n if n else 1) * sizeof(pgpb_hash_job))
    if jobs is NULL:
        raise MemoryError()
    try:
        for i in range(n):
            b = <_Buf>bufs[i]
            jobs[i].data = b.ptr()
            jobs[i].len = b.view.len
            jobs[i].digest = _out(outs[i])
        with nogil:
            rc = pgpb_hash_many(sha256, jobs, n, lanes)
    finally:
        PyMem_Free(jobs)
    if rc != 1:
        raise ValueError(f"SHA-{256 if sha256 else 1} of many buffers failed (lanes {lanes})")
    return outs


def sha1_many(items) -> list:
    """The SHA-1 digest of every bytes-like object of ``items`` (several at once on SHA-NI)."""
    return _digests(items, 0, 0)


def sha256_many(items) -> list:
    """The SHA-256 digest of every bytes-like object of ``items`` (several at once on SHA-NI)."""
    return _digests(items, 1, 0)


def _sha_many_lanes(bint sha256, items, int lanes) -> list:
    """For tests: :func:`sha1_many` / :func:`sha256_many` on ``lanes`` SHA-NI lanes (1 to
    ``SHA_MAX_LANES``; 0: the default), or one by one in libcrypto (-1)."""
    return _digests(items, sha256, lanes)


SHA_MAX_LANES = PGPB_SHA_MAX_LANES


# --- AES key wrap --------------------------------------------------------------------------------------


def aes_key_wrap(kek, key) -> bytes:
    """RFC 3394 AES key wrap of ``key`` (a multiple of 8 octets, at least 16) under ``kek``."""
    cdef _Buf k = _Buf(kek), d = _Buf(key)
    _check_key(k.view.len, "key-encryption key")
    if d.view.len % 8 or d.view.len < 16 or d.view.len > (1 << 20):
        raise ValueError("the key to wrap must be a multiple of 8 octets, at least 16")
    out = PyBytes_FromStringAndSize(NULL, d.view.len + 8)
    if pgpb_aes_key_wrap(k.ptr(), k.view.len, d.ptr(), d.view.len, _out(out)) != 1:
        raise ValueError("AES key wrap failed")
    return out


def aes_key_unwrap(kek, wrapped) -> bytes:
    """RFC 3394 AES key unwrap; ValueError when the integrity check fails."""
    cdef _Buf k = _Buf(kek), d = _Buf(wrapped)
    _check_key(k.view.len, "key-encryption key")
    if d.view.len % 8 or d.view.len < 24 or d.view.len > (1 << 20):
        raise ValueError("a wrapped key must be a multiple of 8 octets, at least 24")
    out = PyBytes_FromStringAndSize(NULL, d.view.len - 8)
    if pgpb_aes_key_unwrap(k.ptr(), k.view.len, d.ptr(), d.view.len, _out(out)) != 1:
        raise ValueError("AES key unwrap: integrity check failed")
    return out


# --- legacy ECDH PKESKs on Curve25519 ----------------------------------------------------------------

ctypedef int (*_scalarmult_t)(uint8_t *q, const uint8_t *n, const uint8_t *p) nogil
ctypedef int (*_scalarmult_base_t)(uint8_t *q, const uint8_t *n) nogil
cdef _scalarmult_t _x25519 = NULL
cdef _scalarmult_base_t _x25519_base = NULL
cdef object _x25519_py = None  # (scalarmult, scalarmult_base) of nacl.bindings when the addresses are not at hand


cdef int _libsodium() except -1:
    """X25519 from the libsodium that PyNaCl bundles, reached through PyNaCl's own cffi module (the
    function addresses; no headers, no link dependency), initialised by importing ``nacl.bindings``.
    Should a PyNaCl release hide them, its public functions serve instead (same results, slower)."""
    global _x25519, _x25519_base, _x25519_py
    if _x25519 is NULL and _x25519_py is None:
        from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base  # runs sodium_init

        try:
            from nacl._sodium import ffi, lib

            base = int(ffi.cast("uintptr_t", ffi.addressof(lib, "crypto_scalarmult_base")))
            mult = int(ffi.cast("uintptr_t", ffi.addressof(lib, "crypto_scalarmult")))
        except (ImportError, AttributeError, TypeError):
            _x25519_py = (crypto_scalarmult, crypto_scalarmult_base)
        else:
            _x25519_base = <_scalarmult_base_t><uintptr_t>base
            _x25519 = <_scalarmult_t><uintptr_t>mult
    return 0


def _x25519_via_bindings(bint on) -> None:
    """For tests: X25519 through ``nacl.bindings`` (as when PyNaCl hides its libsodium's function
    addresses), the fixed-recipient tables off, while ``on``; else found again on the next use."""
    global _x25519, _x25519_base, _x25519_py, _fixed_on
    _x25519 = _x25519_base = NULL
    _x25519_py = None
    _fixed_on = not on
    if on:
        from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base

        _x25519_py = (crypto_scalarmult, crypto_scalarmult_base)


cdef class _FixedRecipient:
    """The fixed-base table of one recipient's X25519 value (NULL: none, libsodium's ladder serves)."""

    cdef x25519fb_table *table

    def __dealloc__(self):
        x25519fb_table_free(self.table)


cdef dict _fixed = {}  # recipient value (32 octets) -> _FixedRecipient, oldest first
cdef Py_ssize_t FIXED_CACHE = 16  # recipients kept (a table is 30 KiB)
cdef Py_ssize_t FIXED_MIN_BATCH = 4  # a table costs about 3 ladders: not built for fewer messages
cdef bint _fixed_on = True


cdef _FixedRecipient _fixed_recipient(_Buf recipient, Py_ssize_t batch):
    """The cached table of ``recipient``, built when the batch is big enough; None: use libsodium."""
    if not _fixed_on:
        return None
    u = PyBytes_FromStringAndSize(<const char *>recipient.ptr(), 32)
    cdef _FixedRecipient f = _fixed.get(u)
    if f is None:
        if batch < FIXED_MIN_BATCH:
            return None
        f = _FixedRecipient()
        f.table = x25519fb_table_new(recipient.ptr())
        if len(_fixed) >= FIXED_CACHE:
            del _fixed[next(iter(_fixed))]
        _fixed[u] = f
    return f if f.table is not NULL else None


def _x25519_fixed(recipient, secrets) -> "list | None":
    """For tests: ``[(shared or None when all zero, eph), ...]`` of each 32-octet secret by the table of
    ``recipient`` (built afresh), or None when the recipient gets no table."""
    cdef _Buf r = _Buf(recipient)
    if r.view.len != 32:
        raise ValueError("an X25519 public key is 32 octets")
    cdef _FixedRecipient f = _FixedRecipient()
    f.table = x25519fb_table_new(r.ptr())
    if f.table is NULL:
        return None
    cdef list held = [_Buf(s) for s in secrets]
    cdef Py_ssize_t n = len(held), i
    for i in range(n):
        if (<_Buf>held[i]).view.len != 32:
            raise ValueError("an X25519 ephemeral secret is 32 octets")
    cdef _Agreed agreed = _Agreed(held)
    agreed.run(f.table)
    return [(PyBytes_FromStringAndSize(<char *>agreed.shared + 32 * i, 32) if agreed.ok[i] else None,
             PyBytes_FromStringAndSize(<char *>agreed.eph + 32 * i, 32)) for i in range(n)]


cdef class _Agreed:
    """Scratch of a fixed-recipient batch: the secrets in (their checked 32-octet buffers, held here so
    the pointers stay valid), shared secrets (wiped on collection), ephemeral public values and
    all-zero flags out."""

    cdef list held
    cdef const uint8_t **secrets
    cdef uint8_t *shared
    cdef uint8_t *eph
    cdef uint8_t *ok
    cdef Py_ssize_t n

    def __cinit__(self, list held):
        cdef Py_ssize_t n = len(held), i
        self.n, self.held = n, held
        self.secrets = <const uint8_t **>PyMem_Malloc((n if n else 1) * sizeof(uint8_t *))
        self.shared = <uint8_t *>PyMem_Malloc((n if n else 1) * 65)
        if self.secrets is NULL or self.shared is NULL:
            raise MemoryError()
        self.eph = self.shared + 32 * n
        self.ok = self.shared + 64 * n
        for i in range(n):
            self.secrets[i] = (<_Buf>held[i]).ptr()

    def __dealloc__(self):
        if self.shared is not NULL:
            OPENSSL_cleanse(self.shared, 32 * self.n)
        PyMem_Free(self.shared)
        PyMem_Free(<void *>self.secrets)

    cdef void run(self, const x25519fb_table *table):
        x25519fb_agree_many(self.shared, self.eph, self.ok, table, self.secrets, self.n)


cdef int _agree(_Buf secret, _Buf recipient, uint8_t *shared, uint8_t *eph) except -1:
    """``shared = X25519(secret, recipient)``, ``eph = X25519(secret, 9)``; ValueError when ``shared``
    is all zero (libsodium refuses a low-order ``recipient``)."""
    if _x25519 is not NULL:
        if _x25519(shared, secret.ptr(), recipient.ptr()) != 0:
            raise ValueError("X25519 key agreement failed: all-zero shared secret")
        _x25519_base(eph, secret.ptr())
        return 0
    mult, base = _x25519_py
    sec = PyBytes_FromStringAndSize(<const char *>secret.ptr(), 32)
    try:
        z = mult(sec, PyBytes_FromStringAndSize(<const char *>recipient.ptr(), 32))
    except Exception:  # nacl.exceptions.RuntimeError
        raise ValueError("X25519 key agreement failed: all-zero shared secret") from None
    memcpy(shared, PyBytes_AS_STRING(z), 32)
    memcpy(eph, PyBytes_AS_STRING(base(sec)), 32)
    return 0


cdef _Buf _check_pair(key, secret):
    """The secret's buffer, after the checks of a (session key, ephemeral secret) pair."""
    cdef _Buf k = _Buf(key), sec = _Buf(secret)
    if sec.view.len != 32:
        raise ValueError("an X25519 ephemeral secret is 32 octets")
    if k.view.len < 1 or k.view.len > 200:
        raise ValueError("session key size out of range")
    return sec


def ecdh25519_pkesks(recipient, param, head, int kdf_hash, int kek_size, cipher, keys, secrets) -> list:
    """:func:`engine._pgpcrypto_py.ecdh25519_pkesks` (documented there): X25519 by fixed-base tables of
    the recipient and the base point (``x25519fb.c``; batches of ``FIXED_MIN_BATCH`` or more, recipients
    that map to a point of large order) or else PyNaCl's libsodium, the KDF, key wrap and framing in C."""
    cdef _Buf r = _Buf(recipient), prm = _Buf(param), hd = _Buf(head), k, sec
    cdef list ks = list(keys), ss = list(secrets), outs = []
    cdef uint8_t shared[32]
    cdef uint8_t eph[32]
    cdef uint8_t packet[512]
    cdef size_t n
    cdef int c = -1 if cipher is None else cipher
    if r.view.len != 32:
        raise ValueError("an X25519 public key is 32 octets")
    if len(ks) != len(ss):
        raise ValueError("one ephemeral secret per session key")
    if kdf_hash not in (8, 9, 10) or kek_size not in (16, 24, 32) or (cipher is not None and not 0 <= c <= 255):
        raise ValueError("unsupported ECDH KDF hash, key-wrap key size or cipher")
    if prm.view.len > 256 or <size_t>hd.view.len > PGPB_PKESK_HEAD_MAX:
        raise ValueError("ECDH parameter string or PKESK head too long")
    _libsodium()
    cdef _FixedRecipient fixed = _fixed_recipient(r, len(ss))
    cdef _Agreed agreed = None
    cdef Py_ssize_t i
    if fixed is not None:  # all the X25519 first, in one call (its conversions share inversions)
        agreed = _Agreed([_check_pair(key, secret) for key, secret in zip(ks, ss)])
        agreed.run(fixed.table)
    try:
        for i in range(len(ks)):
            if agreed is None:
                sec = _check_pair(ks[i], ss[i])
                _agree(sec, r, shared, eph)
            elif agreed.ok[i]:
                memcpy(shared, agreed.shared + 32 * i, 32)
                memcpy(eph, agreed.eph + 32 * i, 32)
            else:
                raise ValueError("X25519 key agreement failed: all-zero shared secret")
            k = _Buf(ks[i])
            n = pgpb_ecdh25519_pkesk(shared, eph, prm.ptr(), prm.view.len, hd.ptr(), hd.view.len, kdf_hash,
                                     kek_size, c, k.ptr(), k.view.len, packet)
            if n == 0:
                raise ValueError("ECDH PKESK: KDF or key wrap failed in libcrypto")
            outs.append(PyBytes_FromStringAndSize(<char *>packet, n))
    finally:
        OPENSSL_cleanse(shared, 32)
    return outs


# --- CFB with MDC (SEIPD v1) ---------------------------------------------------------------------------


cdef pgpb_cfb *_cfb(_Buf key, const uint8_t *iv, int decrypt, int hash) except NULL:
    _check_key(key.view.len, "key")
    cdef pgpb_cfb *s = pgpb_cfb_new(key.ptr(), key.view.len, iv, decrypt, hash)
    if s is NULL:
        raise MemoryError("libcrypto could not set up AES-CFB")
    return s


cdef int _update(pgpb_cfb *s, const uint8_t *data, Py_ssize_t n, uint8_t *out, int hash=1) except -1:
    cdef int rc
    if n >= NOGIL_ABOVE:
        with nogil:
            rc = pgpb_cfb_update(s, data, <size_t>n, out, hash)
    else:
        rc = pgpb_cfb_update(s, data, <size_t>n, out, hash)
    if rc != 1:
        raise ValueError("AES-CFB failed in libcrypto")
    return 0


cdef int _prefix18(_Buf prefix, uint8_t *pre) except -1:
    """The prefix with its last two octets repeated (RFC 9580 section 5.13.1)."""
    if prefix.view.len != BLOCK:
        raise ValueError(f"the random prefix must be one 16-octet block, got {prefix.view.len}")
    memcpy(pre, prefix.ptr(), 16)
    pre[16] = pre[14]
    pre[17] = pre[15]
    return 0


cdef int _mdc_final(pgpb_cfb *s, uint8_t *out) except -1:
    if pgpb_cfb_mdc_final(s, out) != 1:
        raise ValueError("SHA-1 or AES-CFB failed in libcrypto")
    return 0


def cfb_encrypt_mdc(key, prefix, plaintext, head=b"", lead=b"") -> bytes:
    """``lead || 01 || CFB(prefix || prefix[-2:] || head || plaintext || D3 14 || SHA-1)`` in one pass.

    That is a whole SEIPD v1 body (RFC 9580 section 5.13.1) after ``lead`` (e.g. the PKESKs and the
    packet header); ``head`` is encrypted before ``plaintext`` (e.g. the literal data packet header).
    """
    cdef _Buf k = _Buf(key), p = _Buf(prefix), h = _Buf(head), d = _Buf(plaintext), ld = _Buf(lead)
    cdef uint8_t pre[18]
    _prefix18(p, pre)
    cdef Py_ssize_t start = ld.view.len + 1
    out = PyBytes_FromStringAndSize(NULL, start + 18 + h.view.len + d.view.len + MDC_LEN)
    cdef uint8_t *o = _out(out)
    memcpy(o, ld.ptr(), ld.view.len)
    o[start - 1] = 1
    o += start
    cdef pgpb_cfb *s = _cfb(k, NULL, 0, 1)
    try:
        _update(s, pre, 18, o)
        _update(s, h.ptr(), h.view.len, o + 18)
        o += 18 + h.view.len
        _update(s, d.ptr(), d.view.len, o)
        _mdc_final(s, o + d.view.len)
    finally:
        pgpb_cfb_free(s)
    return out


def cfb_encrypt_mdc_many(items) -> list:
    """:func:`cfb_encrypt_mdc` of every ``(key, prefix, plaintext, head, lead)`` of ``items``, same bytes.

    Each output is laid out first; then, without the GIL, the MDC SHA-1 of all of them (several at once
    on SHA-NI) and their AES-CFB with eight messages interleaved (AES-NI keeps eight independent CFB
    chains in flight where one chain would wait on each block); a message long enough to run alone
    anyway is hashed block by block just ahead of its encryption instead (``pgpb_cfb_mdc_many``).
    Without AES-NI libcrypto encrypts them one by one, without SHA-NI it hashes them one by one."""
    cdef list seq = list(items), outs = [], held = []
    cdef Py_ssize_t n = len(seq), i, start, body
    cdef _Buf k, p, h, d, ld
    cdef uint8_t *o
    cdef int rc
    cdef pgpb_cfb_job *jobs = <pgpb_cfb_job *>PyMem_Malloc((n if n else 1) * sizeof(pgpb_cfb_job))
    cdef pgpb_hash_job *mdcs = <pgpb_hash_job *>PyMem_Malloc((n if n else 1) * sizeof(pgpb_hash_job))
    if jobs is NULL or mdcs is NULL:
        PyMem_Free(jobs)
        PyMem_Free(mdcs)
        raise MemoryError()
    try:
        for i in range(n):
            key, prefix, plaintext, head, lead = seq[i]
            k, p, h, d, ld = _Buf(key), _Buf(prefix), _Buf(head), _Buf(plaintext), _Buf(lead)
            _check_key(k.view.len, "key")
            start = ld.view.len + 1
            body = 18 + h.view.len + d.view.len
            out = PyBytes_FromStringAndSize(NULL, start + body + MDC_LEN)
            o = _out(out)
            memcpy(o, ld.ptr(), ld.view.len)
            o[start - 1] = 1
            _prefix18(p, o + start)
            memcpy(o + start + 18, h.ptr(), h.view.len)
            memcpy(o + start + 18 + h.view.len, d.ptr(), d.view.len)
            o[start + body] = 0xD3
            o[start + body + 1] = 0x14
            mdcs[i].data = o + start
            mdcs[i].len = body + 2
            mdcs[i].digest = o + start + body + 2
            jobs[i].key = k.ptr()
            jobs[i].keylen = k.view.len
            jobs[i].data = o + start
            jobs[i].len = body + MDC_LEN
            outs.append(out)
            held.append(k)
        with nogil:
            rc = pgpb_cfb_mdc_many(jobs, mdcs, n)
        if rc != 1:
            raise ValueError("SHA-1 or AES-CFB failed")
    finally:
        PyMem_Free(jobs)
        PyMem_Free(mdcs)
    return outs


def cfb_decrypt_mdc(key, ciphertext) -> bytes:
    """Decrypt a SEIPD v1 body after its version octet and verify its MDC: returns the data between the
    prefix and the MDC packet, or raises ValueError (too short, bad MDC) without returning any of it."""
    cdef _Buf k = _Buf(key), c = _Buf(ciphertext)
    cdef Py_ssize_t n = c.view.len - 18 - MDC_LEN
    cdef uint8_t pre[18]
    cdef uint8_t mdc[22]
    cdef int ok
    if n < 0:
        raise ValueError("SEIPD v1 body shorter than its prefix and MDC")
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef pgpb_cfb *s = _cfb(k, NULL, 1, 1)
    try:
        _update(s, c.ptr(), 18, pre)
        _update(s, c.ptr() + 18, n, _out(out))
        _update(s, c.ptr() + 18 + n, MDC_LEN, mdc, 0)
        ok = pgpb_cfb_mdc_check(s, mdc)
    finally:
        pgpb_cfb_free(s)
    if ok != 1:
        raise ValueError("SEIPD v1: modification detection code does not match")
    return out


cdef class MdcEncryptor:
    """Streaming SEIPD v1 body writer (AES): ``header()``, ``update(data)`` per piece, ``finalize()``."""

    cdef pgpb_cfb *_s
    cdef uint8_t _pre[18]

    def __cinit__(self, key, prefix):
        cdef _Buf k = _Buf(key)
        _prefix18(_Buf(prefix), self._pre)
        self._s = _cfb(k, NULL, 0, 1)

    def __dealloc__(self):
        pgpb_cfb_free(self._s)

    def header(self) -> bytes:
        """The version octet and the encrypted prefix."""
        out = PyBytes_FromStringAndSize(NULL, 19)
        _out(out)[0] = 1
        _update(self._s, self._pre, 18, _out(out) + 1)
        return out

    def update(self, data) -> bytes:
        """Hash and encrypt one piece of the inner packet stream."""
        cdef _Buf d = _Buf(data)
        out = PyBytes_FromStringAndSize(NULL, d.view.len)
        _update(self._s, d.ptr(), d.view.len, _out(out))
        return out

    def update_into(self, data, out) -> None:
        """``update`` writing into the writable buffer ``out`` (at least as long; may be ``data``)."""
        cdef _Buf d = _Buf(data), o = _Buf(out, True)
        if o.view.len < d.view.len:
            raise ValueError("output buffer is shorter than the data")
        _update(self._s, d.ptr(), d.view.len, <uint8_t *>o.view.buf)

    def finalize(self) -> bytes:
        """The encrypted MDC packet; the object is spent afterwards."""
        out = PyBytes_FromStringAndSize(NULL, MDC_LEN)
        _mdc_final(self._s, _out(out))
        return out


cdef class AesCfb:
    """Plain AES-CFB128 stream (zero IV unless given), the `cryptography` context interface."""

    cdef pgpb_cfb *_s

    def __cinit__(self, key, iv=None, bint decrypt=False):
        cdef _Buf k = _Buf(key)
        cdef _Buf v
        cdef const uint8_t *ivp = NULL
        if iv is not None:
            v = _Buf(iv)
            if v.view.len != BLOCK:
                raise ValueError("the CFB IV must be 16 octets")
            ivp = v.ptr()
        self._s = _cfb(k, ivp, decrypt, 0)

    def __dealloc__(self):
        pgpb_cfb_free(self._s)

    def update(self, data) -> bytes:
        cdef _Buf d = _Buf(data)
        out = PyBytes_FromStringAndSize(NULL, d.view.len)
        _update(self._s, d.ptr(), d.view.len, _out(out), 0)
        return out

    def finalize(self) -> bytes:
        return b""
