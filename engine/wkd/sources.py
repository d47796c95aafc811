"""Keyring sources for WKD builds, split into per-certificate byte strings in constant memory.

A source is a keyring file (binary or ASCII-armored, one or many certificates, ``.asc``/``.gpg``/
``.pgp``/``.kbx`` is *not* read), a directory of such files (sorted, not recursive), ``-`` for stdin, or a
GnuPG home (exported to a temporary file through python-gnupg). The splitter only reads packet headers:
bodies are copied into the current certificate or skipped, so a worker process parses each certificate.
User Attributes (photos) and oversized User ID packets are dropped here with their signatures (WKD never
publishes them); a certificate larger than ``max_cert_bytes`` is skipped whole and reported. A plain
certificate (key, User IDs, subkeys and signatures only, all in the buffer) is cut as one slice by the
``wkdsel`` kernel (:func:`engine._wkdsel_py.cert_end`); anything else goes packet by packet.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine import _native
from engine.armor import ArmorReader
from engine.errors import ArmorError, InvalidArgument, MalformedPacket

__all__ = ["KEYRING_SUFFIXES", "CertBlob", "CertRun", "SourceProblem", "expand_sources", "iter_cert_blobs"]

KEYRING_SUFFIXES = (".asc", ".gpg", ".pgp", ".key", ".pub")
MAX_CERT_BYTES = 8 << 20
MAX_UID_BYTES = 64 << 10  # GnuPG refuses User ID packets over 2 KiB on import; we are more lenient
_KEY, _SECRET_KEY, _SIG, _UID, _SUBKEY, _SECRET_SUBKEY, _ATTR = 6, 5, 2, 13, 14, 7, 17
_DROP_ALWAYS = (12, 10, 21)  # trust, marker, padding
_CERT_TAGS = (_KEY, _SECRET_KEY, _SIG, _UID, _SUBKEY, _SECRET_SUBKEY, _ATTR)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CertBlob:
    """One certificate's packets (``data``) and where it came from (``source``, byte ``offset``)."""

    source: str
    offset: int
    data: bytes
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertRun:
    """Consecutive plain certificates of one source in one byte string: certificate ``i`` is
    ``data[ends[i-1]:ends[i]]`` (from 0 for the first), found at byte ``offset + ends[i-1]``. One object
    instead of one :class:`CertBlob` each: the parent cuts and the pool pickles a run at once."""

    source: str
    offset: int
    data: bytes
    ends: tuple[int, ...]

    def blobs(self) -> list[CertBlob]:
        """The run's certificates, each as the :class:`CertBlob` the splitter would have made."""
        out, start = [], 0
        for end in self.ends:
            out.append(CertBlob(self.source, self.offset + start, self.data[start:end]))
            start = end
        return out


@dataclass(frozen=True)
class SourceProblem:
    """Something in a source that is not published: a skipped certificate or an unreadable rest."""

    source: str
    offset: int
    reason: str


class _Scanner:
    """Packet headers over a binary stream through a refilled buffer; bodies copied or skipped."""

    def __init__(self, f: BinaryIO, source: str) -> None:
        self.f, self.source = f, source
        self.buf = b""
        self.pos = 0  # position in buf
        self.base = 0  # stream offset of buf[0]
        self.seekable = bool(getattr(f, "seekable", lambda: False)())

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _need(self, n: int) -> bool:
        if len(self.buf) - self.pos >= n:
            return True
        self.base += self.pos
        self.buf = self.buf[self.pos :]
        self.pos = 0
        while len(self.buf) < n:
            chunk = self.f.read(max(_CHUNK, n - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def header(self) -> tuple[int, int, int] | None:
        """``(tag, header length, body length)`` of the next packet; None at the end of the stream."""
        start = self.offset
        if not self._need(1):
            return None
        first = self.buf[self.pos]
        if not first & 0x80:
            raise MalformedPacket(f"not a packet header (octet 0x{first:02x})", start, self.source)
        if first & 0x40:
            tag = first & 0x3F
            self._need(6)
            o1 = self.buf[self.pos + 1] if len(self.buf) > self.pos + 1 else None
            if o1 is None:
                raise MalformedPacket("truncated packet header", start, self.source)
            if o1 < 192:
                return tag, 2, o1
            if o1 < 224:
                if len(self.buf) < self.pos + 3:
                    raise MalformedPacket("truncated packet header", start, self.source)
                return tag, 3, ((o1 - 192) << 8) + self.buf[self.pos + 2] + 192
            if o1 == 255:
                if len(self.buf) < self.pos + 6:
                    raise MalformedPacket("truncated packet header", start, self.source)
                return tag, 6, int.from_bytes(self.buf[self.pos + 2 : self.pos + 6], "big")
            raise MalformedPacket("partial body length in a keyring packet", start, self.source)
        tag, kind = (first >> 2) & 0x0F, first & 3
        if kind == 3:
            raise MalformedPacket("indeterminate length in a keyring packet", start, self.source)
        size = 1 << kind
        if not self._need(1 + size):
            raise MalformedPacket("truncated packet header", start, self.source)
        return tag, 1 + size, int.from_bytes(self.buf[self.pos + 1 : self.pos + 1 + size], "big")

    def take(self, n: int) -> bytes:
        if not self._need(n):
            raise MalformedPacket(f"truncated packet: {n} bytes declared", self.offset, self.source)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        have = len(self.buf) - self.pos
        if n <= have:
            self.pos += n
            return
        self.base += len(self.buf)
        self.buf, self.pos, n = b"", 0, n - have
        if self.seekable:
            here = self.f.tell()
            end = self.f.seek(0, os.SEEK_END)
            if here + n > end:
                raise MalformedPacket("truncated packet", self.base, self.source)
            self.f.seek(here + n)
            self.base += n
            return
        while n:
            chunk = self.f.read(min(n, _CHUNK))
            if not chunk:
                raise MalformedPacket("truncated packet", self.base, self.source)
            n -= len(chunk)
            self.base += len(chunk)


def _take_run(
    sc: _Scanner, end: int, most: int, cert_end: Callable[..., int], max_uid: int, max_cert: int
) -> CertRun:
    """The plain certificate at ``sc.pos`` (ending at ``end``) and up to ``most`` - 1 plain ones after
    it in the buffer, as one run; ``sc`` moves past them."""
    buf, start = sc.buf, sc.pos
    ends = [end - start]
    while len(ends) < most and (nxt := cert_end(buf, end, max_uid, max_cert)) > 0:
        ends.append(nxt - start)
        end = nxt
    sc.pos = end
    return CertRun(sc.source, sc.base + start, buf[start:end], tuple(ends))


def split_binary(
    f: BinaryIO,
    source: str,
    max_cert_bytes: int = MAX_CERT_BYTES,
    max_uid_bytes: int = MAX_UID_BYTES,
    run_certs: int = 0,
) -> Iterator[CertBlob | CertRun | SourceProblem]:
    """Cut a binary keyring stream into certificates; a framing error ends the source with a problem.
    With ``run_certs`` > 1, consecutive plain certificates come as :class:`CertRun` of up to that many
    (the same certificates at the same offsets as the :class:`CertBlob` otherwise yielded)."""
    sc = _Scanner(f, source)
    cert_end = _native.kernel("wkdsel").cert_end
    parts: list[bytes] = []
    size, start, notes = 0, 0, []
    too_big = dropping = False

    def flush() -> CertBlob | SourceProblem | None:
        if not parts and not too_big:
            return None
        if too_big:
            return SourceProblem(source, start, f"certificate larger than {max_cert_bytes} bytes: skipped")
        return CertBlob(source, start, b"".join(parts), tuple(notes))

    try:
        while True:
            if type(sc.buf) is bytes and (end := cert_end(sc.buf, sc.pos, max_uid_bytes, max_cert_bytes)) > 0:
                # the common certificate in one slice without a header parse here (the next packet is
                # a primary key, so whatever was collected before is complete)
                if (done := flush()) is not None:
                    yield done
                parts, size, notes, too_big, dropping = [], 0, [], False, False
                if run_certs > 1:
                    yield _take_run(sc, end, run_certs, cert_end, max_uid_bytes, max_cert_bytes)
                    continue
                at = sc.offset
                blob = sc.buf[sc.pos : end]
                sc.pos = end
                yield CertBlob(source, at, blob)
                continue
            if (head := sc.header()) is None:
                break
            tag, hlen, blen = head
            at = sc.offset
            if tag in (_KEY, _SECRET_KEY):
                if (done := flush()) is not None:
                    yield done
                parts, size, start, notes, too_big, dropping = [], 0, at, [], False, False
                if tag == _KEY and type(sc.buf) is bytes:
                    # the common certificate (key, User IDs, subkeys, signatures, all inside the
                    # buffer) in one slice; anything else goes packet by packet below
                    end = cert_end(sc.buf, sc.pos, max_uid_bytes, max_cert_bytes)
                    if end > 0:
                        blob = sc.buf[sc.pos : end]
                        sc.pos = end
                        yield CertBlob(source, at, blob)
                        continue
            elif tag in _DROP_ALWAYS or tag not in _CERT_TAGS or (not parts and not too_big):
                sc.skip(hlen + blen)  # packets outside any certificate, trust packets
                continue
            elif tag == _ATTR or (tag == _UID and blen > max_uid_bytes):
                if tag == _UID:
                    notes.append(
                        f"User ID packet of {blen} bytes at byte {at} dropped (limit {max_uid_bytes})"
                    )
                dropping = True
                sc.skip(hlen + blen)
                continue
            elif tag in (_UID, _SUBKEY, _SECRET_SUBKEY):
                dropping = False
            elif tag == _SIG and dropping:
                sc.skip(hlen + blen)
                continue
            if too_big or size + hlen + blen > max_cert_bytes:
                too_big = True
                parts = []
                sc.skip(hlen + blen)
                continue
            parts.append(sc.take(hlen + blen))
            size += hlen + blen
    except MalformedPacket as exc:
        yield SourceProblem(source, exc.offset or 0, f"unreadable from here on: {exc.reason}")
        return
    if (done := flush()) is not None:
        yield done


def _is_armored(head: bytes) -> bool:
    return head.lstrip()[:15] == b"-----BEGIN PGP "


def split_stream(f: BinaryIO, source: str, **limits: int) -> Iterator[CertBlob | CertRun | SourceProblem]:
    """Certificates of a binary or armored stream (sniffed from its first bytes); ``limits``:
    :func:`split_binary`'s keywords."""
    buffered = f if hasattr(f, "peek") else open(f.fileno(), "rb", closefd=False)  # noqa: SIM115
    head = buffered.peek(4096)[:4096]  # type: ignore[attr-defined]
    if not head.strip():
        return
    if _is_armored(head):
        try:
            reader = ArmorReader(buffered, multiple=True)  # every block, streamed in bounded memory
        except ArmorError as exc:
            yield SourceProblem(source, 0, f"unreadable armor: {exc}")
            return
        yield from split_binary(reader, source, **limits)  # type: ignore[arg-type]
    elif head[0] & 0x80:
        yield from split_binary(buffered, source, **limits)
    else:
        yield SourceProblem(source, 0, "neither an OpenPGP keyring nor ASCII armor")


def expand_sources(sources: Iterable[str]) -> list[str]:
    """Files of the sources in order: directories give their keyring files sorted; ``-`` is stdin."""
    out = []
    for src in sources:
        if src == "-" or not os.path.isdir(src):
            if src != "-" and not os.path.exists(src):
                raise InvalidArgument(f"{src}: no such file or directory")
            out.append(src)
            continue
        files = sorted(p for p in Path(src).iterdir() if p.is_file() and p.suffix.lower() in KEYRING_SUFFIXES)
        out += [str(p) for p in files]
    return out


@contextlib.contextmanager
def gnupg_export(gnupghome: str) -> Iterator[str]:
    """The public keyring of a GnuPG home exported (binary) into a temporary file, deleted afterwards."""
    import gnupg

    if not os.path.isdir(gnupghome):
        raise InvalidArgument(f"{gnupghome}: GnuPG home is not a directory")
    with tempfile.TemporaryDirectory(prefix="pgpbulk-wkd-") as tmp:
        out = os.path.join(tmp, "export.gpg")
        gpg = gnupg.GPG(gnupghome=gnupghome)
        gpg.export_keys([], armor=False, output=out)
        if not os.path.exists(out):
            raise InvalidArgument(f"{gnupghome}: gpg --export produced nothing")
        yield out


def iter_cert_blobs(
    sources: Iterable[str], gnupghome: str | None = None, **limits: int
) -> Iterator[CertBlob | CertRun | SourceProblem]:
    """Every certificate of every source, in order (``gnupghome`` first), one at a time (runs of them
    with ``run_certs``; ``limits``: :func:`split_binary`'s keywords)."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(gnupg_export(gnupghome))] if gnupghome else []
        names = [f"gnupghome:{gnupghome}"] if gnupghome else []
        for path in expand_sources(sources):
            files.append(path)
            names.append("<stdin>" if path == "-" else path)
        for path, name in zip(files, names, strict=True):
            if path == "-":
                yield from split_stream(sys.stdin.buffer, name, **limits)
                continue
            with open(path, "rb") as f:
                yield from split_stream(f, name, **limits)
