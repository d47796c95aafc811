"""A durable record of how far a job's output is complete, so ``--resume`` can finish it.

**File format.** An append-only text log, one record per line: compact JSON, a tab, the CRC-32 of the
JSON in 8 hex digits, a newline. Line 1 is ``begin`` (the run parameters' digest), then one ``commit``
per batch, then ``done``.

**Why it is crash-safe.** A fresh journal is written to a temporary file, fsynced, renamed over the old
one and the directory fsynced, so a crash leaves the old journal or the new one, never a mixture. Each
commit is a single ``write`` of one whole line followed by ``fsync``; it starts only after the previous
line's fsync returned, so after a crash every line but possibly the last is intact, and the last is
either intact, absent, cut short or garbage (a file extended but not yet written). A reader keeps the
longest prefix of lines that end in a newline and match their checksum, and before appending again
truncates the file to it, so a torn tail can never glue itself to a later record.

**Versions.** ``begin`` carries the format :data:`VERSION` and the name of the segment hash that
checks a segmented output at resume (:data:`~engine.scheduler.sink.segment_hash`; version 1 used
SHA-256 and did not name it): a journal that differs in either is refused, never misread.

**Contract with the sink** (the job's writer). A commit claims that the output up to ``offset`` is
durable: the sink flushes and fsyncs *before* :meth:`Journal.commit`. On resume the sink is rewound to
the last committed :class:`Position` (an append-only file is truncated to ``offset``; a Maildir sink,
idempotent per file name, may ignore it) and the job re-runs from input item ``items``. Output written
after the last commit is thus discarded and written again, identically, so the final output equals that
of an uninterrupted run. See :mod:`engine.scheduler.sink` for the file sink.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import InvalidArgument, PgpBulkError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

VERSION = 2  # 2: segments hashed with the hash named in ``begin`` (1: SHA-256)


class ResumeRefused(PgpBulkError):
    """The journal cannot be used to resume (other parameters, another run holds it, output damaged)."""


@dataclass(frozen=True)
class Position:
    """How far the output is durable: input items done, sink position and digest, last batch number."""

    items: int = 0
    offset: int = 0
    digest: str = ""
    batch: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


START = Position()


def params_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the parameters that shape the output bytes.

    Put in everything that changes the output (input identity, recipients, mode, format options) and
    nothing that does not (worker count, batch size), so a resumed run may use other workers.
    """
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _line(record: Mapping[str, Any]) -> bytes:
    body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return body + b"\t%08x\n" % zlib.crc32(body)


def _parse(raw: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of the longest valid prefix of ``raw`` and that prefix's length in bytes."""
    records: list[dict[str, Any]] = []
    good = 0
    while True:
        end = raw.find(b"\n", good)
        if end < 0:
            break
        body, sep, crc = raw[good:end].rpartition(b"\t")
        try:
            if not sep or int(crc, 16) != zlib.crc32(body) or len(crc) != 8:
                break
            record = json.loads(body)
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        good = end + 1
    return records, good


def _segment_hash_name() -> str:
    """The name of the segment hash in use (its module imports this one)."""
    from engine.scheduler.sink import segment_hash

    return segment_hash.name


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (fsync of the directory)."""
    with contextlib.suppress(OSError):  # some platforms cannot open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _position(record: Mapping[str, Any]) -> Position:
    return Position(
        items=int(record["items"]),
        offset=int(record["offset"]),
        digest=str(record.get("digest", "")),
        batch=int(record.get("batch", -1)),
        extra=dict(record.get("extra", {})),
    )


class Journal:
    """Progress journal of one job at ``path`` (conventionally ``OUTPUT.journal``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.finished = False
        self._file: BinaryIO | None = None
        self._last: Position | None = None

    def begin(self, run_params_digest: str, *, resume: bool = False) -> Position:
        """Open the journal and return where the job starts (:data:`START` unless resuming).

        ``resume=True`` with an existing journal continues it after checking the parameters' digest
        (:class:`ResumeRefused` if they differ); ``resume=False`` or no journal starts afresh.
        """
        if self._file is not None:
            raise InvalidArgument("journal already begun")
        self.finished = False
        if resume and self.path.exists():
            return self._reopen(run_params_digest)
        self._lock_existing()
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(
                _line({"k": "begin", "v": VERSION, "params": run_params_digest, "seg": _segment_hash_name()})
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._open_append(None)
        self._last = None
        return START

    def _reopen(self, run_params_digest: str) -> Position:
        raw = self.path.read_bytes()
        records, good = _parse(raw)
        if not records or records[0].get("k") != "begin":
            raise ResumeRefused(f"{self.path}: not a pgpbulk journal (or its first record is damaged)")
        if records[0].get("v") != VERSION:
            raise ResumeRefused(
                f"{self.path}: journal version {records[0].get('v')} (written by another pgpbulk version), "
                f"expected {VERSION}; start afresh without --resume"
            )
        if records[0].get("seg") != _segment_hash_name():
            raise ResumeRefused(
                f"{self.path}: the interrupted run hashed its output with {records[0].get('seg')}, this "
                f"pgpbulk uses {_segment_hash_name()} (xxhash installed or removed since?); "
                "start afresh without --resume"
            )
        if records[0].get("params") != run_params_digest:
            raise ResumeRefused(
                f"{self.path}: the run parameters differ from those of the interrupted run; "
                "rerun with the original parameters, or start afresh without --resume"
            )
        commits = [r for r in records[1:] if r.get("k") == "commit"]
        self._last = _position(commits[-1]) if commits else None
        self.finished = any(r.get("k") == "done" for r in records[1:])
        self._open_append(good if good < len(raw) else None)
        return self._last or START

    def _lock_existing(self) -> None:
        if fcntl is None or not self.path.exists():
            return
        with open(self.path, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ResumeRefused(f"{self.path}: another run is using this journal") from None

    def _open_append(self, truncate_to: int | None) -> None:
        f = open(self.path, "r+b")  # noqa: SIM115 - kept open until finish()/close()
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                raise ResumeRefused(f"{self.path}: another run is using this journal") from None
        if truncate_to is not None:  # drop a torn tail before appending (see module docstring)
            f.truncate(truncate_to)
            os.fsync(f.fileno())
        f.seek(0, os.SEEK_END)
        self._file = f

    def _append(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise InvalidArgument("journal not begun (or already finished)")
        self._file.write(_line(record))
        self._file.flush()
        os.fsync(self._file.fileno())

    def commit(self, position: Position) -> None:
        """Durably record that the output up to ``position`` is complete (the sink fsynced first)."""
        last = self._last
        if last is not None and (position.items < last.items or position.offset < last.offset):
            raise InvalidArgument(f"journal position went backwards: {position} after {self._last}")
        record: dict[str, Any] = {
            "k": "commit",
            "items": position.items,
            "offset": position.offset,
            "batch": position.batch,
        }
        if position.digest:
            record["digest"] = position.digest
        if position.extra:
            record["extra"] = position.extra
        self._append(record)
        self._last = position

    def last(self) -> Position | None:
        """The last committed position, or ``None`` if nothing was committed yet."""
        return self._last

    def finish(self, *, remove: bool = False) -> None:
        """Record that the job completed (or delete the journal with ``remove=True``) and close it."""
        self._append({"k": "done", "items": self._last.items if self._last else 0})
        self.finished = True
        self.close()
        if remove:
            self.path.unlink()
            fsync_dir(self.path.parent)

    def close(self) -> None:
        """Close without finishing (an interrupted run); the journal stays resumable."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
