"""The sink side of the journal contract, and the sink for one append-only output file.

A :class:`ResumableSink` writes a batch of results, makes it durable and says where it is
(:meth:`~ResumableSink.checkpoint`), and can go back to a journaled position (:meth:`~ResumableSink.rewind`).
:class:`AppendFile` is that sink for a single byte stream (an mbox, a concatenation of messages); its
digest is the SHA-256 of the file's first ``offset`` bytes, checked again on resume, so damage to the
finished part of the output is detected instead of silently extended.

**Segmented digest** (``AppendFile(path, segmented=True)``): the file is written as segments whose
:data:`segment_hash` digest the caller may already know (a worker hashed what it built), so the writer
hashes nothing. The digest is ``seg:`` + the segment hash's name + ``:`` + SHA-256 of the segments'
``(length, segment digest)`` list; on resume the caller gives that list back (it keeps it beside the
output, e.g. in per-message records): it must hash to the journaled digest, and every segment of the
file must hash as listed, which checks the same bytes as a whole-file hash. The segment hash (XXH3-128,
else SHA-256 cut to 16 bytes where the ``xxhash`` package is missing) guards against torn or damaged
writes, not against an adversary (who could rewrite the journal as well), so it need not be
cryptographic; a digest made with another segment hash is refused. A segmented file is appended with
``O_DIRECT`` writes where the file system takes them (see :class:`_Appender`): the output does not pass
through the page cache a second time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from engine.errors import InvalidArgument
from engine.scheduler.journal import Position, ResumeRefused, fsync_dir

_READ = 1 << 20
SEGMENTED = "seg:"
SEGMENT_DIGEST_SIZE = 16  # bytes of a segment digest
SEGMENT_ENTRY_SIZE = 8 + SEGMENT_DIGEST_SIZE  # bytes of a :func:`segment_entry`


class SegmentHash:
    """The hash of a segment (:func:`segment_entry`): ``name`` (recorded in digests and journals, so that
    a resume with another hash is refused) and ``new(data)``, a hasher with ``update`` and ``digest``."""

    __slots__ = ("name", "new")

    def __init__(self, name: str, new: Callable[..., Any]) -> None:
        self.name, self.new = name, new

    def digest(self, data: bytes | bytearray | memoryview) -> bytes:
        """The segment digest (:data:`SEGMENT_DIGEST_SIZE` bytes) of ``data``."""
        return self.new(data).digest()  # type: ignore[no-any-return]


class _TruncatedSha256:
    """SHA-256 cut to :data:`SEGMENT_DIGEST_SIZE` bytes (with SHA-NI faster than BLAKE2b)."""

    __slots__ = ("_hash",)

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._hash = hashlib.sha256(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()[:SEGMENT_DIGEST_SIZE]


def available_segment_hash() -> tuple[str, Callable[..., Any]]:
    """XXH3-128 (``xxhash``: 1.1 µs for a 34 KB message against SHA-256's 23 µs), else SHA-256 cut to
    16 bytes."""
    try:
        import xxhash
    except ImportError:
        return "sha256-128", _TruncatedSha256
    return "xxh3-128", xxhash.xxh3_128


segment_hash = SegmentHash(*available_segment_hash())


def segment_entry(length: int, digest: bytes) -> bytes:
    """What a segment adds to a segmented digest: its length (8 bytes) and its :data:`segment_hash` digest."""
    return length.to_bytes(8, "big") + digest


def segmented_prefix() -> str:
    """How a segmented digest made with the current :data:`segment_hash` begins."""
    return f"{SEGMENTED}{segment_hash.name}:"


@runtime_checkable
class ResumableSink(Protocol):
    """What :func:`engine.scheduler.job.run_journaled` needs from a job's writer."""

    def write_batch(self, results: list[Any]) -> None:
        """Write the results of one batch, in order (a :class:`Failed` included: the job decides)."""

    def checkpoint(self) -> tuple[int, str]:
        """Flush and fsync everything written; return ``(offset, digest)`` of the durable output."""

    def rewind(self, position: Position) -> None:
        """Discard output written after ``position`` (raise :class:`ResumeRefused` if it is missing)."""


def _copy_range(src: int, dst: int, src_at: int, dst_at: int, length: int) -> None:
    """Copy ``length`` bytes between files at the given offsets: in the kernel (``copy_file_range``)
    where the platform and file systems allow, else through a buffer."""
    copy = getattr(os, "copy_file_range", None)
    while length and copy is not None:
        try:
            n = copy(src, dst, min(length, 1 << 30), src_at, dst_at)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            break
        if n == 0:
            raise ResumeRefused("a shard file ended early while it was copied")
        src_at, dst_at, length = src_at + n, dst_at + n, length - n
    while length:
        data = os.pread(src, min(length, _READ), src_at)
        if not data:
            raise ResumeRefused("a shard file ended early while it was copied")
        done = 0
        while done < len(data):
            done += os.pwrite(dst, data[done:], dst_at + done)
        src_at, dst_at, length = src_at + len(data), dst_at + len(data), length - len(data)


_ALIGN = 4096  # O_DIRECT: file offsets, lengths and memory in multiples of the block size (4096: any disk)
_STAGE = 8 << 20  # bytes staged for one direct write at most


def _pwrite_all(fd: int, data: memoryview, at: int) -> None:
    while data:
        n = os.pwrite(fd, data, at)
        data, at = data[n:], at + n


class _Appender:
    """Appends to the end of an open file; with ``O_DIRECT`` where the file system allows it.

    Direct: bytes (from memory, or read from another file) are staged in a page-aligned buffer and
    whole blocks are written past the page cache: no second page-cache copy of the output and no
    writeback at fsync, about half the CPU of ``copy_file_range`` into a file system that cannot share
    extents (ext4). The last, partial block is written through the page cache at :meth:`sync` and
    :meth:`close` (and again, completed, by the next direct write: the kernel keeps both views
    coherent), so the file's length is always the bytes appended. Without ``O_DIRECT`` (tmpfs, other
    systems, or a direct write refused) bytes go through the page cache, files are copied in the kernel."""

    def __init__(self, fd: int, path: Path, end: int, direct: bool = True) -> None:
        self.fd = fd  # the file, opened for buffered reads and writes
        self.base = end - end % _ALIGN  # file offset of the staging buffer's first byte
        self.staged = 0  # bytes in the staging buffer (from ``base``)
        self.buf: mmap.mmap | None = None
        self.dfd: int | None = None
        flag = getattr(os, "O_DIRECT", 0) if direct else 0
        try:
            self.dfd = os.open(path, os.O_WRONLY | flag | getattr(os, "O_CLOEXEC", 0)) if flag else None
        except OSError:
            self.dfd = None
        if self.dfd is None:
            self.base = end
            return
        try:
            self.buf = mmap.mmap(-1, _STAGE + _ALIGN)  # page-aligned
            if end > self.base:  # the block being filled: its first bytes are written again with the rest
                self._read_into(fd, self.base, end - self.base)
        except BaseException:
            self._release()
            raise

    @property
    def end(self) -> int:
        """The file offset after the last byte appended."""
        return self.base + self.staged

    def _read_into(self, src: int, at: int, length: int) -> None:
        assert self.buf is not None
        while length:
            n = os.preadv(src, [memoryview(self.buf)[self.staged : self.staged + length]], at)
            if n == 0:
                raise ResumeRefused("a file ended early while it was copied")
            self.staged, at, length = self.staged + n, at + n, length - n

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""
        view = memoryview(data).cast("B")
        while view:
            if self.buf is None:
                _pwrite_all(self.fd, view, self.base)
                self.base += len(view)
                return
            n = min(len(view), _STAGE - self.staged)
            self.buf[self.staged : self.staged + n] = view[:n]
            self.staged += n
            view = view[n:]
            if self.staged == _STAGE:
                self._write_blocks()

    def append_file(self, src: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of the open file ``src`` from ``offset``."""
        while length:
            if self.buf is None:
                _copy_range(src, self.fd, offset, self.base, length)
                self.base += length
                return
            n = min(length, _STAGE - self.staged)
            self._read_into(src, offset, n)
            offset, length = offset + n, length - n
            if self.staged == _STAGE:
                self._write_blocks()

    def _write_blocks(self) -> None:
        """Write the staged whole blocks directly; the partial last block stays staged."""
        assert self.buf is not None and self.dfd is not None
        whole = self.staged - self.staged % _ALIGN
        if not whole:
            return
        try:
            _pwrite_all(self.dfd, memoryview(self.buf)[:whole], self.base)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            refused = True  # this file system takes no direct writes after all
        else:
            refused = False
        if refused:  # out of the handler: its traceback holds views of the buffer
            self._stop_direct()
            return
        rest = self.staged - whole
        self.buf[:rest] = self.buf[whole : self.staged]
        self.base, self.staged = self.base + whole, rest

    def _write_tail(self) -> None:
        """Write what is staged through the page cache (it stays staged: the next block write redoes it)."""
        if self.buf is not None and self.staged:
            _pwrite_all(self.fd, memoryview(self.buf)[: self.staged], self.base)

    def _stop_direct(self) -> None:
        self._write_tail()
        self.base, self.staged = self.end, 0
        self._release()

    def _release(self) -> None:
        if self.dfd is not None:
            os.close(self.dfd)
            self.dfd = None
        if self.buf is not None:
            buf, self.buf = self.buf, None
            with contextlib.suppress(BufferError):  # an error's traceback may hold a view: freed with it
                buf.close()

    def sync(self) -> None:
        """Make every byte appended durable (fsync)."""
        if self.buf is not None:
            self._write_blocks()
            self._write_tail()
        os.fsync(self.fd)

    def close(self) -> None:
        """Write what is staged (no fsync) and let the buffer go."""
        if self.buf is not None:
            self._write_blocks()
            self._write_tail()
        self._release()


class AppendFile:
    """Append-only output file: ``write`` bytes, ``checkpoint`` (fsync), ``rewind`` (truncate).

    A segmented file appends through an :class:`_Appender` (direct writes where the file system allows)."""

    def __init__(self, path: str | os.PathLike[str], *, segmented: bool = False, direct: bool = True) -> None:
        self.path = Path(path)
        self.segmented = segmented
        self.direct = direct  # a segmented file may bypass the page cache (False: it is read back soon)
        self._file: BinaryIO | None = None
        self._app: _Appender | None = None  # a segmented file's writer
        self._hash = hashlib.sha256()
        self._created = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (one segment of a segmented file)."""
        if self.segmented:
            self.write_segments([data], [segment_entry(len(data), segment_hash.digest(data))])
            return
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        self._file.write(data)
        self._hash.update(data)

    def write_segments(
        self, chunks: Sequence[bytes | bytearray | memoryview], entries: Sequence[bytes]
    ) -> None:
        """Segmented file: append ``chunks`` whose :func:`segment_entry` values the caller computed."""
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        if not self.segmented:
            raise InvalidArgument("write_segments() needs AppendFile(segmented=True)")
        assert self._app is not None
        for chunk in chunks:
            self._app.append(chunk)
        self._hash.update(b"".join(entries))

    def append_from(
        self, path: str | os.PathLike[str], offset: int, length: int, entries: Sequence[bytes]
    ) -> None:
        """Segmented file: append ``length`` bytes of the file ``path`` from ``offset`` (segments whose
        :func:`segment_entry` values the caller computed): read into the direct writer's buffer, or
        copied in the kernel (``copy_file_range``) where direct writes are not available."""
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        if not self.segmented:
            raise InvalidArgument("append_from() needs AppendFile(segmented=True)")
        assert self._app is not None
        src = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self._app.append_file(src, offset, length)
        finally:
            os.close(src)
        self._hash.update(b"".join(entries))

    def write_batch(self, results: list[Any]) -> None:
        """Append each result (bytes) of a batch; a :class:`Failed` is refused (the job maps it first)."""
        for data in results:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise InvalidArgument(f"AppendFile writes bytes, got {data!r}: map failures to output first")
            self.write(data)

    def checkpoint(self) -> tuple[int, str]:
        """Flush and fsync; the file's length and the SHA-256 of its content."""
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first")
        if self._app is not None:
            self._app.sync()
        else:
            self._file.flush()
            os.fsync(self._file.fileno())
        if self._created:  # make the new file's directory entry durable too
            fsync_dir(self.path.parent)
            self._created = False
        end = self._app.end if self._app is not None else self._file.tell()
        return end, (segmented_prefix() if self.segmented else "") + self._hash.hexdigest()

    def rewind(self, position: Position, segments: Sequence[tuple[int, bytes]] = ()) -> None:
        """Open the file, check its first ``position.offset`` bytes against the digest, cut the rest.

        A segmented file needs its ``(length, segment digest)`` segments up to ``position`` (none at
        START)."""
        self.close()
        if self.segmented != position.digest.startswith(SEGMENTED) and position.digest:
            raise ResumeRefused(f"{self.path}: the journal's digest is of another kind; start afresh")
        if self.segmented:
            self._rewind_segmented(position, segments)
            return
        self._created = not self.path.exists()
        f = open(self.path, "r+b" if not self._created else "w+b")  # noqa: SIM115 - closed in close()
        try:
            size = os.fstat(f.fileno()).st_size
            if size < position.offset:
                raise ResumeRefused(
                    f"{self.path}: output is {size} bytes, shorter than the {position.offset} journaled"
                )
            digest = hashlib.sha256()
            remaining = position.offset
            while remaining:
                chunk = f.read(min(_READ, remaining))
                if not chunk:
                    raise ResumeRefused(f"{self.path}: output ended early while checking it")
                digest.update(chunk)
                remaining -= len(chunk)
            if position.digest and digest.hexdigest() != position.digest:
                raise ResumeRefused(f"{self.path}: the first {position.offset} bytes differ from the journal")
            f.truncate(position.offset)
            f.seek(position.offset)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            raise
        self._file, self._hash = f, digest

    def _rewind_segmented(self, position: Position, segments: Sequence[tuple[int, bytes]]) -> None:
        if position.digest and not position.digest.startswith(segmented_prefix()):
            kind = position.digest.split(":")[1] if position.digest.count(":") > 1 else "sha256"
            raise ResumeRefused(
                f"{self.path}: the journal's segments were hashed with {kind}, this pgpbulk uses "
                f"{segment_hash.name}; start afresh without --resume"
            )
        chain = hashlib.sha256(b"".join(segment_entry(n, digest) for n, digest in segments))
        if (segmented_prefix() + chain.hexdigest() if segments else "") != position.digest or sum(
            n for n, _ in segments
        ) != position.offset:
            raise ResumeRefused(f"{self.path}: the segment list does not match the journal")
        self._created = not self.path.exists()
        f = open(self.path, "r+b" if not self._created else "w+b")  # noqa: SIM115 - closed in close()
        try:
            if os.fstat(f.fileno()).st_size < position.offset:
                raise ResumeRefused(
                    f"{self.path}: output is shorter than the {position.offset} bytes journaled"
                )
            for n, digest in segments:
                if segment_hash.digest(f.read(n)) != digest:
                    raise ResumeRefused(
                        f"{self.path}: the first {position.offset} bytes differ from the journal"
                    )
            f.truncate(position.offset)
            f.seek(position.offset)
            f.flush()
            os.fsync(f.fileno())
            self._app = _Appender(f.fileno(), self.path, position.offset, self.direct)
        except BaseException:
            f.close()
            raise
        self._file, self._hash = f, chain

    def close(self) -> None:
        """Close the file (does not fsync: call :meth:`checkpoint` first)."""
        if self._file is not None:
            try:
                if self._app is not None:
                    self._app.close()
            finally:
                self._app = None
                self._file.close()
                self._file = None

    def __enter__(self) -> AppendFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
