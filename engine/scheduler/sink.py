"""The sink side of the journal contract, and the sink for one append-only output file.

A :class:`ResumableSink` writes a batch of results, makes it durable and says where it is
(:meth:`~ResumableSink.checkpoint`), and can go back to a journaled position (:meth:`~ResumableSink.rewind`).
:class:`AppendFile` is that sink for a single byte stream (an mbox, a concatenation of messages); its
digest is the SHA-256 of the file's first ``offset`` bytes, checked again on resume, so damage to the
finished part of the output is detected instead of silently extended.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from engine.errors import InvalidArgument
from engine.scheduler.journal import Position, ResumeRefused, fsync_dir

_READ = 1 << 20


@runtime_checkable
class ResumableSink(Protocol):
    """What :func:`engine.scheduler.job.run_journaled` needs from a job's writer."""

    def write_batch(self, results: list[Any]) -> None:
        """Write the results of one batch, in order (a :class:`Failed` included: the job decides)."""

    def checkpoint(self) -> tuple[int, str]:
        """Flush and fsync everything written; return ``(offset, digest)`` of the durable output."""

    def rewind(self, position: Position) -> None:
        """Discard output written after ``position`` (raise :class:`ResumeRefused` if it is missing)."""


class AppendFile:
    """Append-only output file: ``write`` bytes, ``checkpoint`` (fsync), ``rewind`` (truncate)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._created = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""
        if self._file is None:
            raise ResumeRefused("AppendFile.rewind() must be called first (START for a fresh run)")
        self._file.write(data)
        self._hash.update(data)

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
        return self._file.tell(), self._hash.hexdigest()

    def rewind(self, position: Position) -> None:
        """Open the file, check its first ``position.offset`` bytes against the digest, cut the rest."""
        self.close()
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

    def close(self) -> None:
        """Close the file (does not fsync: call :meth:`checkpoint` first)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> AppendFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
