"""The sink side of the journal contract, and the sink for one append-only output file.

A :class:`ResumableSink` writes a batch of results, makes it durable and says where it is
(:meth:`~ResumableSink.checkpoint`), and can go back to a journaled position (:meth:`~ResumableSink.rewind`).
:class:`AppendFile` is that sink for a single byte stream (an mbox, a concatenation of messages); its
digest is the SHA-256 of the file's first ``offset`` bytes, checked again on resume, so damage to the
finished part of the output is detected instead of silently extended.

**Segmented digest** (``AppendFile(path, segmented=True)``): the file is written as segments whose
SHA-256 the caller may already know (a worker hashed what it built), so the writer hashes nothing. The
digest is ``seg:`` + SHA-256 of the segments' ``(length, SHA-256)`` list; on resume the caller gives that
list back (it keeps it beside the output, e.g. in per-message records): it must hash to the journaled
digest, and every segment of the file must hash as listed, which checks the same bytes as a whole-file
hash.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from engine.errors import InvalidArgument
from engine.scheduler.journal import Position, ResumeRefused, fsync_dir

_READ = 1 << 20
SEGMENTED = "seg:"


def segment_entry(length: int, sha256: bytes) -> bytes:
    """What a segment adds to a segmented digest: its length (8 bytes) and its SHA-256."""
    return length.to_bytes(8, "big") + sha256


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


class AppendFile:
    """Append-only output file: ``write`` bytes, ``checkpoint`` (fsync), ``rewind`` (truncate)."""

    def __init__(self, path: str | os.PathLike[str], *, segmented: bool = False) -> None:
        self.path = Path(path)
        self.segmented = segmented
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._created = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (one segment of a segmented file)."""
        if self.segmented:
            self.write_segments([data], [segment_entry(len(data), hashlib.sha256(data).digest())])
            return
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        self._file.write(data)
        self._hash.update(data)

    def write_segments(self, chunks: Sequence[bytes | memoryview], entries: Sequence[bytes]) -> None:
        """Segmented file: append ``chunks`` whose :func:`segment_entry` values the caller computed."""
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        if not self.segmented:
            raise InvalidArgument("write_segments() needs AppendFile(segmented=True)")
        self._file.writelines(chunks)
        self._hash.update(b"".join(entries))

    def append_from(self, path: str | os.PathLike[str], offset: int, length: int, entries: Sequence[bytes]) -> None:
        """Segmented file: append ``length`` bytes of the file ``path`` from ``offset`` (segments whose
        :func:`segment_entry` values the caller computed), copied in the kernel where it can
        (``copy_file_range``), so the bytes never pass through this process."""
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        if not self.segmented:
            raise InvalidArgument("append_from() needs AppendFile(segmented=True)")
        f = self._file
        f.flush()
        end = f.tell()
        src = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            _copy_range(src, f.fileno(), offset, end, length)
        finally:
            os.close(src)
        f.seek(end + length)
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
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._created:  # make the new file's directory entry durable too
            fsync_dir(self.path.parent)
            self._created = False
        return self._file.tell(), (SEGMENTED if self.segmented else "") + self._hash.hexdigest()

    def rewind(self, position: Position, segments: Sequence[tuple[int, bytes]] = ()) -> None:
        """Open the file, check its first ``position.offset`` bytes against the digest, cut the rest.

        A segmented file needs its ``(length, SHA-256)`` segments up to ``position`` (none at START)."""
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
        chain = hashlib.sha256(b"".join(segment_entry(n, sha) for n, sha in segments))
        if (SEGMENTED + chain.hexdigest() if segments else "") != position.digest or sum(
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
            for n, sha in segments:
                if hashlib.sha256(f.read(n)).digest() != sha:
                    raise ResumeRefused(
                        f"{self.path}: the first {position.offset} bytes differ from the journal"
                    )
            f.truncate(position.offset)
            f.seek(position.offset)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            raise
        self._file, self._hash = f, chain

    def close(self) -> None:
        """Close the file (does not fsync: call :meth:`checkpoint` first)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> AppendFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
