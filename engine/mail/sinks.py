"""Resumable archive sinks: the scheduler's :class:`~engine.scheduler.ResumableSink` for mbox, Maildir, .eml.

Output goes to ``DST.partial`` (a file or a folder, mode 0600/0700) and a per-message record file
``DST.journal-records`` (JSON lines: class, outcome, hashes, sizes, output name), both made durable at
each checkpoint before the journal commits. Rewinding to a journaled position keeps exactly the first
``items`` messages: an mbox is truncated to the journaled offset after its prefix is checked against the
journaled digest (a segmented :class:`~engine.scheduler.AppendFile`: one segment per message, whose
length and segment digest (``w``, ``wsha``: XXH3-128, see :data:`~engine.scheduler.sink.segment_hash`),
computed by the worker that built it, are in its record); in a Maildir or .eml folder, whose files are
idempotent per name, every file not named in the kept records is removed. Generated Maildir names carry a
stamp kept in the journal's digest field, so a resumed run names messages as the first run did.

**Shards** (mbox output on a process pool): a worker writes a batch's output (exactly the bytes bound for
the mbox: ciphertext, or messages passed unchanged) into ``DST.shard-PID-N`` beside DST (0600) and sends
back only the records; :meth:`ArchiveSink.checkpoint` appends the shards to ``DST.partial`` in batch
order (with direct writes past the page cache where the file system allows, else ``copy_file_range``
in the kernel; see :class:`~engine.scheduler.AppendFile`), then hands each back to its worker for a
later batch by renaming it ``SHARD.free`` (overwriting a file in place costs a fifth of filling a new
one, whose pages and blocks must be allocated, and of removing it). A shard is never journaled: after
a crash the batch is redone, and leftovers are removed by :meth:`~ArchiveSink.rewind` (the next run,
fresh or resumed) and :meth:`~ArchiveSink.close`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, overload

from engine.errors import InvalidArgument
from engine.mail.emldir import EmlDirWriter
from engine.mail.item import MailItem
from engine.mail.maildir import SUBDIRS, MaildirWriter, fix_sizes
from engine.mail.mbox import MboxWriter, entry_pieces
from engine.mail.mbox import entry as mbox_entry
from engine.mail.pgpmime import MIME_VERSION
from engine.mail.report import Report
from engine.mail.source import sink_format
from engine.scheduler import AppendFile, Failed, Position, ResumeRefused
from engine.scheduler.journal import fsync_dir
from engine.scheduler.sink import SEGMENT_ENTRY_SIZE, segment_entry, segment_hash


@dataclass(frozen=True)
class Processed:
    """One message's result as a worker returns it: the output item and what happened.

    For an mbox sink the worker also builds what is written (:meth:`for_mbox`): ``chunk`` (the
    message as stored), ``entry`` (its segment digest) and ``record`` (its record line); ``item`` then
    carries no bytes, so the parent only appends."""

    item: MailItem  # the output bytes at the source message's place (separator, name, folder)
    mail_class: str
    outcome: str
    sha256: str  # of the plaintext message (input for encrypt, restored message for decrypt)
    bytes_in: int
    source: str = ""
    offset: int = 0
    reason: str | None = None
    out_sha256: str = ""  # of the output message, for the final re-read check (with --verify)
    chunk: bytes = b""
    entry: bytes = b""
    record: bytes = b""
    shard: str = ""  # the chunk lies in this shard file (see :func:`to_shard`), at ``at``, not in ``chunk``
    at: int = 0

    def for_mbox(self) -> Processed:
        """This result ready for an mbox sink (done in the worker)."""
        i = self.item
        return Processed.mbox(
            i.bare(), i.raw, self.mail_class, self.outcome, self.sha256, self.bytes_in, self.reason, self.out_sha256
        )

    @staticmethod
    def mbox(
        item: MailItem, raw: bytes, mail_class: str, outcome: str, sha256: str, bytes_in: int,
        reason: str | None, out_sha256: str = "",
    ) -> Processed:  # fmt: skip
        """A result ready for an mbox sink, built in one step (the worker's hot path): ``item`` carries
        no bytes (its ``raw`` is unused), ``raw`` is the output message."""
        # A PGP/MIME wrapper of ours: after its outer header (fields that cannot start with "From "
        # unless quoted there) come only lines we wrote (MIME, armor): nothing to quote, nothing to scan.
        generated = raw.find(GENERATED_MARK, 0, 1 << 16) + 1 if outcome == "encrypted" else -1
        chunk = mbox_entry(raw, item.separator_line, generated)
        digest = segment_hash.digest(chunk)  # the segment digest of the entry
        record = _RECORD % (
            item.index, _json(mail_class), _json(outcome), _json(sha256), _json(out_sha256), bytes_in,
            len(raw), _json(item.source), item.offset, _json(reason), len(chunk), digest.hex(),
        )  # same bytes as _line(self._record(None, len(raw)) | {"w": ..., "wsha": ...})
        return _built({
            "item": item, "mail_class": mail_class, "outcome": outcome, "sha256": sha256, "bytes_in": bytes_in,
            "source": item.source, "offset": item.offset, "reason": reason, "out_sha256": out_sha256,
            "chunk": chunk, "entry": segment_entry(len(chunk), digest), "record": record.encode(), "shard": "", "at": 0,
        })  # fmt: skip

    @staticmethod
    def sealed(
        item: MailItem, parts: tuple[bytes, bytes, bytes | memoryview, bytes], mail_class: str, sha256: str,
        bytes_in: int, joined: bool = True,
    ) -> Processed:  # fmt: skip
        """``Processed.mbox(item, b"".join(parts), mail_class, "encrypted", sha256, bytes_in, None)`` for a
        message wrapped in PGP/MIME, ``parts`` from :func:`~engine.mail.pgpmime.assemble_parts`: the mbox
        entry is built from them without joining the message first (only its outer fields are quoted;
        the rest is ours, see :func:`~engine.mail.mbox.entry_pieces`). Not ``joined``, ``chunk`` is left a
        tuple of pieces (the big armored block not copied) for :func:`to_shard`, which must follow."""
        outer, top, block, tail = parts
        pieces = entry_pieces(outer, (top, block, tail), item.separator_line)
        h = segment_hash.new(pieces[0])
        h.update(pieces[1])
        h.update(pieces[2])
        digest = h.digest()
        w = len(pieces[0]) + len(pieces[1]) + len(pieces[2])
        record = _RECORD % (
            item.index, _json(mail_class), '"encrypted"', _json(sha256), '""', bytes_in,
            len(outer) + len(top) + len(block) + len(tail), _json(item.source), item.offset, "null", w, digest.hex(),
        )  # as Processed.mbox  # fmt: skip
        return _built({
            "item": item, "mail_class": mail_class, "outcome": "encrypted", "sha256": sha256, "bytes_in": bytes_in,
            "source": item.source, "offset": item.offset, "reason": None, "out_sha256": "",
            "chunk": b"".join(pieces) if joined else tuple(pieces), "entry": segment_entry(w, digest),
            "record": record.encode(), "shard": "", "at": 0,
        })  # fmt: skip

    def _record(self, name: str | None, out: int) -> dict[str, Any]:
        return {
            "i": self.item.index,
            "class": self.mail_class,
            "outcome": self.outcome,
            "sha256": self.sha256,
            "out_sha256": self.out_sha256,
            "in": self.bytes_in,
            "out": out,
            "file": self.source,
            "offset": self.offset,
            "reason": self.reason,
            "name": name,
        }


def _built(fields: dict[str, Any]) -> Processed:
    """The :class:`Processed` of these values (every field, in order) as its ``__init__`` makes it, without
    the frozen dataclass's ``object.__setattr__`` per field (2 µs a message on the worker's hot path)."""
    p = object.__new__(Processed)
    p.__dict__.update(fields)
    return p


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _json(value: str | None) -> str:
    """What ``json.dumps`` writes for a string or None."""
    return "null" if value is None else encode_basestring_ascii(value)


_RECORD = (
    '{"i":%d,"class":%s,"outcome":%s,"sha256":%s,"out_sha256":%s,"in":%d,"out":%d,"file":%s,'
    '"offset":%d,"reason":%s,"name":null,"w":%d,"wsha":"%s"}\n'
)


SHARD = ".shard-"
GENERATED_MARK = b"\n" + MIME_VERSION  # where the part of a wrapped message that we generated begins
FREE = ".free"  # a shard the parent has copied: its worker may overwrite it
_shard_seq = 0
_own_shards: dict[str, list[str]] = {}  # destination -> this process's shard files (for reuse)
_REUSED_SHARDS = 8  # a worker has one or two batches in flight: more shard files are not kept for reuse


def _claim_shard(dst: str) -> tuple[int, str]:
    """An open shard file for the next batch: one of this process's that the parent has handed back
    (renamed ``.free``), overwritten in place, or else a new one (0600)."""
    global _shard_seq
    mine = _own_shards.setdefault(dst, [])
    for path in mine:
        try:
            os.rename(path + FREE, path)
        except FileNotFoundError:  # still waiting to be copied
            continue
        return os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)), path
    _shard_seq += 1
    path = f"{dst}{SHARD}{os.getpid()}-{_shard_seq}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    if len(mine) < _REUSED_SHARDS:
        mine.append(path)
    return fd, path


def to_shard(dst: str, results: list[Processed]) -> list[Processed]:
    """Worker side: write the mbox chunks of a batch into a shard file beside ``dst`` (0600) and return
    the results pointing into it, so that only small records travel back to the parent, which copies
    the shard into the output (:meth:`ArchiveSink.write_batch`) and hands it back. A shard holds exactly
    the bytes bound for the output (ciphertext, or messages passed unchanged); past a batch's end a
    reused one may hold an earlier batch's, which nothing reads."""
    chunks: list[bytes | memoryview] = []
    sizes = []
    for p in results:  # a chunk left in pieces (:meth:`Processed.sealed`) is written piece by piece
        if type(p.chunk) is tuple:
            chunks += p.chunk
            sizes.append(sum(map(len, p.chunk)))
        else:
            chunks.append(p.chunk)
            sizes.append(len(p.chunk))
    fd, path = _claim_shard(dst)
    try:
        _write_all(fd, chunks)
    except BaseException:
        os.close(fd)
        if path in _own_shards[dst]:
            _own_shards[dst].remove(path)
        os.unlink(path)
        raise
    os.close(fd)
    out, at = [], 0
    for p, size in zip(results, sizes, strict=True):
        out.append(_built({**p.__dict__, "chunk": b"", "shard": path, "at": at}))
        at += size
    return out


def _write_all(fd: int, chunks: list[bytes | memoryview]) -> None:
    for i in range(0, len(chunks), 512):  # writev takes at most IOV_MAX (1024) buffers
        part = chunks[i : i + 512]
        done, total = os.writev(fd, part), sum(map(len, part))
        if done < total:  # a short write (a signal, a full disk): finish it plainly
            rest = b"".join(part)[done:]
            while rest:
                rest = rest[os.write(fd, rest) :]


_ENTRY = SEGMENT_ENTRY_SIZE  # bytes of a message's segment entry (its length, its segment digest)


class ShardBatch(Sequence[Processed]):
    """A batch's mbox results whose chunks lie one after another in one shard file (:func:`to_shard`),
    packed for the trip back to the parent (:func:`pack_shard_batch`): a few columns instead of a
    :class:`Processed` and a :class:`MailItem` per message, so a worker pickles, and the parent unpickles,
    some 30 objects per batch instead of 256 with their dicts. Items are rebuilt on access, equal to
    those packed; :class:`ArchiveSink` reads the columns and never rebuilds them.

    ``outcomes`` are the messages' outcomes, as ``run_journaled``'s packed results provide them; a
    :class:`Failed` is never packed."""

    __slots__ = ("classes", "entries", "first", "numbers", "outcomes", "reasons", "records", "seps", "sha256",
                 "shard", "source")  # fmt: skip

    def __init__(
        self, shard: str, source: str, first: int, records: bytes, entries: bytes, seps: tuple[bytes | None, ...],
        classes: tuple[str, ...], outcomes: tuple[str, ...], sha256: str, numbers: array, reasons: tuple[str | None, ...],
    ) -> None:  # fmt: skip
        self.shard, self.source, self.first = shard, source, first
        self.records, self.entries, self.seps = records, entries, seps  # records: the lines, joined
        self.classes, self.outcomes = classes, outcomes
        self.sha256 = sha256  # the hex digests, joined
        self.numbers, self.reasons = numbers, reasons  # per message: bytes_in, offset, out, at, record end

    def __reduce__(self) -> tuple[type[ShardBatch], tuple[Any, ...]]:
        return ShardBatch, (
            self.shard, self.source, self.first, self.records, self.entries, self.seps, self.classes,
            self.outcomes, self.sha256, self.numbers, self.reasons,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.classes)

    @overload
    def __getitem__(self, i: int) -> Processed: ...
    @overload
    def __getitem__(self, i: slice) -> list[Processed]: ...
    def __getitem__(self, i: int | slice) -> Processed | list[Processed]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # IndexError past the end (iteration stops there)
        bytes_in, offset, _, at, end = self.numbers[5 * i : 5 * i + 5]
        begin = self.numbers[5 * i - 1] if i else 0
        item = MailItem.stored(self.first + i, b"", self.seps[i], offset, self.source, False)  # type: ignore[arg-type]
        return _built({
            "item": item, "mail_class": self.classes[i], "outcome": self.outcomes[i],
            "sha256": self.sha256[64 * i : 64 * i + 64], "bytes_in": bytes_in, "source": self.source,
            "offset": offset, "reason": self.reasons[i], "out_sha256": "", "chunk": b"",
            "entry": self.entries[_ENTRY * i : _ENTRY * i + _ENTRY], "record": self.records[begin:end],
            "shard": self.shard, "at": at,
        })  # fmt: skip

    @property
    def at(self) -> int:
        """Where the batch's first chunk lies in the shard."""
        return self.numbers[3]

    @property
    def length(self) -> int:
        """Bytes of the batch's chunks in the shard, from :attr:`at`."""
        return self.numbers[-2] + int.from_bytes(self.entries[-_ENTRY : -_ENTRY + 8], "big") - self.numbers[3]


def pack_shard_batch(results: list[Any]) -> ShardBatch | list[Any]:
    """Worker side (the pool's ``pack``): ``results`` as a :class:`ShardBatch` when they are what
    :func:`to_shard` returns for consecutive messages of one mbox (chunks one after another in one
    shard, nothing else a column cannot carry), else ``results`` unchanged."""
    if not results or type(results[0]) is not Processed or not results[0].shard:
        return results
    p0 = results[0]
    shard, source, first, at = p0.shard, p0.source, p0.item.index, p0.at
    numbers, end = array("q"), 0
    for i, p in enumerate(results):
        if type(p) is not Processed:
            return results
        item = p.item
        if (
            p.shard != shard or p.at != at or p.chunk or p.out_sha256 or len(p.entry) != _ENTRY
            or len(p.sha256) != 64 or not p.sha256.isascii() or p.source != source
            or type(item) is not MailItem or item.index != first + i or item.raw or item.truncated
            or item.name is not None or item.subdir is not None or item.source != source or item.offset != p.offset
        ):  # fmt: skip
            return results
        end += len(p.record)
        numbers.extend((p.bytes_in, p.offset, _record_out(p.record), at, end))
        at += int.from_bytes(p.entry[:8], "big")
    return ShardBatch(
        shard, source, first, b"".join(p.record for p in results), b"".join(p.entry for p in results),
        tuple(p.item.separator_line for p in results), tuple(p.mail_class for p in results),
        tuple(p.outcome for p in results), "".join(p.sha256 for p in results), numbers,
        tuple(p.reason for p in results),
    )  # fmt: skip


def remove_shards(dst: Path) -> None:
    """Remove the shard files of ``dst`` (left over by a killed run, or by a batch that was retried)."""
    for entry in os.scandir(dst.parent):
        if entry.name.startswith(dst.name + SHARD):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def partial_of(dst: Path) -> Path:
    return dst.with_name(dst.name + ".partial")


def records_of(dst: Path) -> Path:
    return dst.with_name(dst.name + ".journal-records")


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The per-message records written so far, in input order."""
    with open(path, "rb") as f:
        for line in f:
            yield json.loads(line)


_OUT = re.compile(rb'"out":(\d+)')  # a record's only "out" key: a JSON string holds no bare quote


def _record_out(record: bytes) -> int:
    """The ``out`` field of a record line, without parsing the whole line."""
    m = _OUT.search(record)
    return int(m.group(1)) if m is not None else int(json.loads(record)["out"])


class ArchiveSink:
    """Writes processed messages into ``DST.partial`` and their records; ``commit`` renames into place.

    With a ``report`` (a fresh one), every message kept on rewind and every one written is counted in
    it, in order, as its record says: the job's report without reading the records back
    (:attr:`counted` tells that this happened: a run found finished on resume never rewinds).
    ``direct=False`` keeps an mbox's output in the page cache (no O_DIRECT appends): for a run that
    re-reads it at once (``--verify``), which would otherwise read it all back from the disk."""

    def __init__(
        self, dst: str | Path, fmt: str, *, overwrite: bool = False, report: Report | None = None, direct: bool = True
    ) -> None:
        self.path = Path(dst)
        self.report = report
        self.counted = False
        self.fmt = sink_format(fmt)
        if self.fmt not in ("mbox", "maildir", "emldir"):
            raise InvalidArgument(f"cannot write format {fmt!r}")
        self.overwrite = overwrite
        self._direct = direct
        self.partial = partial_of(self.path)
        self.records = records_of(self.path)
        self._stamp = int(time.time())
        self._file: AppendFile | None = None
        self._writer: MboxWriter | MaildirWriter | EmlDirWriter | None = None
        self._rec: Any = None
        self._pending: list[bytes] = []
        self._deferred: list[list[Processed]] = []  # batches whose chunks wait in shard files
        self._idle = threading.Event()  # no checkpoint snapshot is being made durable
        self._idle.set()

    # -- ResumableSink ------------------------------------------------------------------------------
    def rewind(self, position: Position) -> None:
        """Start afresh (``items == 0``) or keep exactly the first ``position.items`` messages."""
        self.close()
        remove_shards(self.path)
        fresh = position.items == 0
        if fresh:
            _remove(self.partial)
            _remove(self.records)
        elif not self.partial.exists() or not self.records.exists():
            raise ResumeRefused(f"{self.partial}: partial output missing; start again without --resume")
        kept = self._rewind_records(position.items)
        if self.report is not None:
            if self.counted:
                raise InvalidArgument("an ArchiveSink that counts into a report rewinds once")
            for r in kept:
                self.report.count_record(r)
            self.counted = True
        if self.fmt == "mbox":
            if fresh:
                os.close(os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._file = AppendFile(self.partial, segmented=True, direct=self._direct)
            try:
                segments = [(int(r["w"]), bytes.fromhex(r["wsha"])) for r in kept]
            except (KeyError, TypeError, ValueError):
                raise ResumeRefused(f"{self.records}: records of another version; start afresh") from None
            self._file.rewind(position, segments)
            self._writer = MboxWriter(self._file)  # type: ignore[arg-type]
            return
        if not fresh:
            self._stamp = int(position.digest.partition("stamp=")[2] or self._stamp)
            self._prune({r["name"] for r in kept})
        self._writer = MaildirWriter(self.partial) if self.fmt == "maildir" else EmlDirWriter(self.partial)

    def _rewind_records(self, items: int) -> list[dict[str, Any]]:
        fd = os.open(self.records, os.O_RDWR | os.O_CREAT, 0o600)
        f = os.fdopen(fd, "r+b")
        kept: list[dict[str, Any]] = []
        size = 0
        for line in f:
            if len(kept) == items or not line.endswith(b"\n"):
                break
            kept.append(json.loads(line))
            size += len(line)
        if len(kept) < items:
            f.close()
            raise ResumeRefused(f"{self.records}: {len(kept)} records, the journal claims {items}")
        f.truncate(size)
        f.seek(size)
        os.fsync(f.fileno())
        self._rec = f
        return kept

    def _prune(self, names: set[str]) -> None:
        """Remove files written after the journaled position (and stray temporary files)."""
        dirs = [self.partial / d for d in SUBDIRS] if self.fmt == "maildir" else [self.partial]
        for d in dirs:
            for entry in os.scandir(d):
                if entry.is_file() and entry.name not in names:
                    os.unlink(entry.path)
        if self.fmt == "maildir":
            for entry in os.scandir(self.partial / "tmp"):
                os.unlink(entry.path)
        missing = [n for n in names if not any((d / n).exists() for d in dirs)]
        if missing:
            raise ResumeRefused(f"{self.partial}: {len(missing)} journaled messages are missing")

    def write_batch(self, results: list[Any]) -> None:
        """Write the processed messages and queue their records (durable at :meth:`checkpoint`).

        mbox: one write of what the workers built (:meth:`Processed.for_mbox`), no per-message work; a
        :class:`ShardBatch` is queued and counted as it came, by columns."""
        if type(results) is ShardBatch and self._file is not None:
            self._deferred.append(results)
            self._pending.append(results.records)
            if self.report is not None:
                self._count_packed(results)
            return
        for p in results:
            if isinstance(p, Failed):  # item functions never raise; this is a bug, not a message problem
                raise InvalidArgument(f"message #{p.index} could not be processed: {p.reason}")
        if self._file is not None and all(p.entry for p in results):
            if any(p.shard for p in results):
                # Queued for :meth:`finish_checkpoint` / :meth:`checkpoint` (the scheduler's commit thread):
                # there a run of consecutive chunks of one shard is one append, then the shard goes.
                self._deferred.append(results)
            else:
                self._idle.wait()  # the file is the commit thread's until its snapshot is durable
                self._append_deferred()  # in order: what earlier batches left in shards goes first
                self._file.write_segments([p.chunk for p in results], [p.entry for p in results])
            self._pending += [p.record for p in results]
        else:
            self._idle.wait()
            self._append_deferred()
            self._pending += [self._write(p) for p in results]
        if self.report is not None:
            self._count(results)

    def _count(self, results: list[Processed]) -> None:
        """Count the written messages in :attr:`report`, as their records say."""
        count = self.report.count  # type: ignore[union-attr]
        for p in results:
            out = _record_out(p.record) if p.record else len(p.item.raw)
            count(p.item.index, p.mail_class, p.outcome, p.sha256, p.bytes_in, out, p.source, p.offset, p.reason)

    def _count_packed(self, batch: ShardBatch) -> None:
        """:meth:`_count` of a packed batch, a column at a time."""
        numbers, sha = batch.numbers, batch.sha256
        self.report.count_many(  # type: ignore[union-attr]
            batch.first, batch.classes, batch.outcomes, [sha[i : i + 64] for i in range(0, len(sha), 64)],
            numbers[0::5], numbers[2::5], batch.source, numbers[1::5], batch.reasons,
        )  # fmt: skip

    def _append_deferred(self) -> None:
        for results in self._deferred:
            self._append_shards(results)
        self._deferred.clear()

    def _append_shards(self, results: list[Any] | ShardBatch) -> None:
        assert self._file is not None
        if type(results) is ShardBatch:
            self._file.append_from(results.shard, results.at, results.length, [results.entries])
            os.rename(results.shard, results.shard + FREE)  # back to its worker (see to_shard)
            return
        i = 0
        while i < len(results):
            p = results[i]
            j, length = i, 0
            while j < len(results) and results[j].shard == p.shard and results[j].at == p.at + length:
                length += int.from_bytes(results[j].entry[:8], "big")
                j += 1
            if not p.shard:  # a chunk carried in the result itself
                self._file.write_segments([p.chunk], [p.entry])
                i += 1
                continue
            self._file.append_from(p.shard, p.at, length, [r.entry for r in results[i:j]])
            i = j
        for shard in {p.shard for p in results if p.shard}:
            os.rename(shard, shard + FREE)  # back to its worker (see to_shard)

    def _write(self, p: Processed) -> bytes:
        item, w, name = p.item, self._writer, None
        if isinstance(w, MboxWriter):
            p = p.for_mbox()
            self._file.write_segments([p.chunk], [p.entry])  # type: ignore[union-attr]
            return p.record
        if isinstance(w, MaildirWriter):
            name = item.name if item.subdir else f"{self._stamp}.M{item.index:08d}.pgpbulk:2,"
            name = fix_sizes(name, item.raw)
            w.write(item.raw, name, item.subdir)
        elif isinstance(w, EmlDirWriter):
            name = Path(w.write(item.raw, item.name, item.index)).name
        else:
            raise InvalidArgument("sink not rewound")
        return _line(p._record(name, len(item.raw)))

    def prepare_checkpoint(self) -> tuple[list[list[Processed]], list[bytes]] | None:
        """Main thread: take what was written so far (an mbox's shard batches and all records) as one
        snapshot for :meth:`finish_checkpoint`, which the scheduler runs in its commit thread while this
        sink takes further batches. None (commit with :meth:`checkpoint`) for a Maildir or .eml folder."""
        if self._file is None:
            return None
        snapshot = (self._deferred, self._pending)
        self._deferred, self._pending = [], []
        self._idle.clear()
        return snapshot

    def finish_checkpoint(self, snapshot: tuple[list[list[Processed]], list[bytes]]) -> tuple[int, str]:
        """Commit thread: copy the snapshot's shards into the output in order, fsync it, then append and
        fsync the snapshot's records; ``(offset, digest)`` of the output up to the snapshot's end."""
        deferred, pending = snapshot
        try:
            assert self._file is not None and self._rec is not None
            for results in deferred:
                self._append_shards(results)
            offset, digest = self._file.checkpoint()
            self._rec.write(b"".join(pending))
            self._rec.flush()
            os.fsync(self._rec.fileno())
            return offset, digest
        finally:
            self._idle.set()

    def checkpoint(self) -> tuple[int, str]:
        """Output durable first, then the records; returns the journal's ``(offset, digest)``."""
        if self._file is not None:
            self._append_deferred()
            offset, digest = self._file.checkpoint()
        elif isinstance(self._writer, MaildirWriter):
            self._writer.sync()
        if self._file is None:
            fsync_dir(self.partial)
        self._rec.write(b"".join(self._pending))
        self._rec.flush()
        os.fsync(self._rec.fileno())
        self._pending.clear()
        if self._file is None:
            offset, digest = self._rec.tell(), f"stamp={self._stamp}"
        return offset, digest

    # -- end of the run -----------------------------------------------------------------------------
    def close(self) -> None:
        self._deferred.clear()
        remove_shards(self.path)
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._rec is not None:
            self._rec.close()
            self._rec = None

    def commit(self) -> None:
        """Rename ``DST.partial`` to ``DST`` (replacing it only with ``overwrite``) and drop the records."""
        self.close()
        old = None
        if self.path.exists():
            if not self.overwrite:
                raise InvalidArgument(
                    f"{self.path} appeared while writing; the output stays in {self.partial}"
                )
            if self.path.is_dir():
                old = self.path.with_name(f"{self.path.name}.old-{os.getpid()}")
                os.rename(self.path, old)
        os.replace(self.partial, self.path)
        fsync_dir(self.path.parent)
        if old is not None:
            shutil.rmtree(old)
        _remove(self.records)

    def abort(self) -> None:
        """Remove the partial output and the records."""
        self.close()
        _remove(self.partial)
        _remove(self.records)


__all__ = ["ArchiveSink", "Processed", "partial_of", "read_records", "records_of", "remove_shards", "to_shard"]
