"""Pure-Python twin of ``engine._wkd_c``: z-base-32, SHA-1 and the WKD local-part hash.

Same names, arguments, results and errors as the native kernel; the tests run every case on both.
z-base-32 here is RFC 4648 base32 (``base64.b32encode``, same most-significant-bit-first order)
with the alphabet swapped, which also makes it an independent check of the C encoder.
``create_files`` is the worker's loop of ``os.open``/``os.write``/``os.close`` the kernel runs in C;
``entry_texts`` formats the manifest entries of a worker's files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# bytes.translate runs in C; str.translate with a dict table would dominate the hash.
_TO_ZB32 = bytes.maketrans(_RFC4648.encode(), ALPHABET.encode())
_FROM_ZB32 = str.maketrans(ALPHABET, _RFC4648)
_VALUES = {ch: i for i, ch in enumerate(ALPHABET)}
# Two symbols per 10-bit value: a 160-bit digest is 16 lookups.
_PAIRS = [ALPHABET[i >> 5] + ALPHABET[i & 31] for i in range(1024)]
_PAIR_SHIFTS = range(150, -1, -10)
# WKD draft section 3.1: only ASCII upper-case letters are mapped; bytes >= 0x80 stay as they are.
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_BACKENDS = ("auto", "portable", "sha_ni")


def features() -> dict:
    """What this implementation uses: ``{"native": False, "sha_ni": False, "sha1": "hashlib"}``."""
    return {"native": False, "sha_ni": False, "sha1": "hashlib"}


def _buffer_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    view = memoryview(data)  # TypeError for objects without the buffer protocol
    if not view.c_contiguous:
        raise BufferError("a C-contiguous buffer is required")
    return view.tobytes()


def sha1(data: object, backend: str = "auto") -> bytes:
    """SHA-1 digest of a bytes-like object (hashlib); ``backend`` is checked as the native one is."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown SHA-1 backend {backend!r}; expected one of {sorted(_BACKENDS)}")
    if backend == "sha_ni":
        raise ValueError("SHA-1 backend 'sha_ni' is not available on this CPU")
    return hashlib.sha1(_buffer_bytes(data)).digest()


def zbase32_encode(data: object) -> str:
    """z-base-32 of a bytes-like object: ceil(8n/5) characters, zero-filled last character."""
    raw = _buffer_bytes(data)
    nchars = (len(raw) * 8 + 4) // 5
    return base64.b32encode(raw)[:nchars].translate(_TO_ZB32).decode("ascii")


def zbase32_decode(text: str) -> bytes:
    """Bytes of a z-base-32 string; ValueError (with the position) for anything encode never emits."""
    if not isinstance(text, str):
        raise TypeError(f"z-base-32 text must be str, not {type(text).__name__}")
    for i, ch in enumerate(text):
        if ch not in _VALUES:
            raise ValueError(f"invalid z-base-32 character {ch!r} at position {i}")
    n = len(text)
    if n % 8 in (1, 3, 6):
        raise ValueError(f"invalid z-base-32 length {n}: no whole number of bytes encodes to it")
    unused_bits = (n * 5) % 8
    if unused_bits and _VALUES[text[-1]] & ((1 << unused_bits) - 1):
        raise ValueError(f"non-zero unused bits in the last z-base-32 character at position {n - 1}")
    padded = text.translate(_FROM_ZB32) + "=" * (-n % 8)
    return base64.b32decode(padded)


def _local_bytes(local_part: object) -> bytes:
    if isinstance(local_part, str):
        return local_part.encode("utf-8")
    try:
        return _buffer_bytes(local_part)
    except TypeError:
        raise TypeError(f"local part must be str or bytes-like, not {type(local_part).__name__}") from None


def wkd_hash(local_part: str | bytes) -> str:
    """z-base-32(SHA-1(local part with ASCII A-Z lower-cased)); a str is UTF-8 encoded first."""
    digest = hashlib.sha1(_local_bytes(local_part).translate(_ASCII_LOWER)).digest()
    n = int.from_bytes(digest, "big")
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in _PAIR_SHIFTS])


def wkd_hashes(items: Iterable[str | bytes]) -> list[str]:
    """``[wkd_hash(x) for x in items]``."""
    if isinstance(items, (str, bytes, bytearray, memoryview)):
        raise TypeError("wkd_hashes expects an iterable of local parts, not a single one")
    try:
        seq = list(items)
    except TypeError:
        raise TypeError("wkd_hashes expects an iterable of str or bytes") from None
    return [wkd_hash(x) for x in seq]


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def create_files(dir_fd: int, rows: Sequence[Sequence[Any]], name_at: int, data_at: int) -> list[int]:
    """Create, below the open directory ``dir_fd``, the file ``row[name_at]`` (str) holding
    ``row[data_at]`` (bytes-like) for each row of ``rows``: ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode
    0644 (less the umask), one ``write``. Returns the indexes of the rows whose file existed already,
    in order; any other failure raises OSError (the files made before it stay)."""
    taken = []
    for i, row in enumerate(rows):
        view = memoryview(row[data_at])
        try:
            fd = os.open(row[name_at], _NEW_FILE, 0o644, dir_fd=dir_fd)
        except FileExistsError:
            taken.append(i)
            continue
        try:
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    return taken


_ESCAPED = re.compile(r'[\x00-\x1f\\"]').search  # what ``json`` escapes with ensure_ascii=False
_PATHS = {
    "advanced": '"advanced": "{0}/hu/{1}"',
    "direct": '"direct": "hu/{1}"',
    "both": '"advanced": "{0}/hu/{1}", "direct": "hu/{1}"',
}


def entry_texts(method: str, rows: Sequence[Sequence[Any]], shas: Sequence[str]) -> list[str | None]:
    """The manifest entry, as the JSON text ``json`` writes (``ensure_ascii=False``), of a file holding
    one key for each row ``(domain, hash, local, address, fingerprint, created, data, status)`` whose
    file has the SHA-256 ``shas[i]`` (hex): keys in the order of :func:`engine.wkd.tree.entry_text`,
    paths per ``method``. None for a row whose address is no str or one JSON escapes (a control
    character, ``"``, ``\\``): the caller encodes that one. The other fields go in as they are: the local
    part and the domain are the address's, the rest hex, z-base-32, a number or a status word."""
    paths_format = _PATHS.get(method)
    if paths_format is None:
        raise ValueError(f"unknown method {method!r}")
    rows, shas = list(rows), list(shas)
    if len(shas) != len(rows):
        raise ValueError("entry_texts: one SHA-256 per row expected")
    out: list[str | None] = []
    for (domain, hashed, local, address, fpr, created, _, status), sha in zip(rows, shas, strict=True):
        if not isinstance(address, str) or _ESCAPED(address) is not None:
            out.append(None)  # the caller encodes this one
            continue
        paths = paths_format.format(domain, hashed)
        out.append(
            f'{{"address": "{address}", "domain": "{domain}", "local": "{local}", "hash": "{hashed}", '
            f'"fingerprints": ["{fpr}"], "created": [{int(created)}], "status": ["{status}"], '
            f'"sha256": "{sha}", "paths": {{{paths}}}}}'
        )
    return out
