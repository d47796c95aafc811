"""Opening archives by path: format detection, readers, and sinks that appear only when complete.

A sink writes beside its destination (``DST.partial``, a file or a directory), and ``commit()`` renames it
into place; ``abort()`` (or an exception inside ``with``) removes it. A stale ``.partial`` left by a killed
run is replaced by the next run. The source is only ever opened for reading.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from engine.errors import InvalidArgument
from engine.mail.emldir import EmlDirWriter, is_emldir, read_emldir
from engine.mail.item import MailItem
from engine.mail.maildir import MaildirWriter, is_maildir, read_maildir
from engine.mail.mbox import VARIANTS, MboxRef, MboxWriter, read_mbox, scan_mbox

FORMATS = ("mbox", *VARIANTS, "maildir", "emldir")
SINK_FORMATS = ("mbox", "maildir", "emldir")


def detect_format(path: str | Path) -> str:
    """``maildir`` (cur/new/tmp), ``emldir`` (a folder of .eml files) or ``mbox`` (a file)."""
    p = Path(path)
    if p.is_dir():
        if is_maildir(p):
            return "maildir"
        if is_emldir(p):
            return "emldir"
        raise InvalidArgument(f"{p}: a directory that is neither a Maildir nor a folder of .eml files")
    if p.is_file():
        return "mbox"
    raise InvalidArgument(f"{p}: no such file or directory")


class Source:
    """An archive opened for reading; iterate it for ``MailItem``s (each pass re-reads the archive)."""

    def __init__(self, path: str | Path, fmt: str) -> None:
        self.path = Path(path)
        self.fmt = fmt

    def __iter__(self) -> Iterator[MailItem]:
        if self.fmt == "maildir":
            return read_maildir(self.path)
        if self.fmt == "emldir":
            return read_emldir(self.path)
        return read_mbox(self.path, "mboxrd" if self.fmt == "mbox" else self.fmt)

    def refs(self, skip: int = 0) -> Iterator[MailItem | MboxRef]:
        """The messages for a process pool, from message ``skip`` on: where each lies in an mbox file
        (:class:`MboxRef`, which a worker loads itself, so message bytes cross between processes once, not
        twice; a scan that can cut its own batches, see :class:`~engine.mail.mbox.MboxScan`), else the items."""
        if self.fmt in ("maildir", "emldir"):
            return itertools.islice(self, skip, None)
        return scan_mbox(self.path, "mboxrd" if self.fmt == "mbox" else self.fmt, skip)


def open_source(path: str | Path, fmt: str | None = None) -> Source:
    """Open an archive; ``fmt`` overrides detection (``mbox`` reads as mboxrd; ``mboxo``, ``mboxcl2``)."""
    if fmt is not None and fmt not in FORMATS:
        raise InvalidArgument(f"unknown format {fmt!r}; expected one of {FORMATS}")
    return Source(path, fmt or detect_format(path))


def sink_format(fmt: str) -> str:
    """The format a sink writes for a source format (every mbox flavour is written as mboxrd)."""
    return "mbox" if fmt in ("mbox", *VARIANTS) else fmt


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Sink:
    """An archive being written at ``DST.partial``; becomes ``DST`` on ``commit()``."""

    def __init__(self, path: str | Path, fmt: str, *, overwrite: bool = False) -> None:
        if fmt not in SINK_FORMATS:
            raise InvalidArgument(f"cannot write format {fmt!r}; expected one of {SINK_FORMATS}")
        self.path = Path(path)
        self.fmt = fmt
        self.overwrite = overwrite
        if self.path.exists() and not overwrite:
            raise InvalidArgument(f"{self.path} exists (pass overwrite=True to replace it)")
        self.partial = self.path.with_name(self.path.name + ".partial")
        _remove(self.partial)
        self.done = False
        self._file: BinaryIO | None = None
        self._writer: MboxWriter | MaildirWriter | EmlDirWriter
        if fmt == "mbox":
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self._file = os.fdopen(fd, "wb")
            self._writer = MboxWriter(self._file)
        elif fmt == "maildir":
            self._writer = MaildirWriter(self.partial)
        else:
            self._writer = EmlDirWriter(self.partial)

    def write(self, item: MailItem) -> None:
        """Append one message, keeping its separator line, or its file name and folder."""
        w = self._writer
        if isinstance(w, MboxWriter):
            w.write(item.raw, item.separator_line)
        elif isinstance(w, MaildirWriter):
            w.write(item.raw, item.name if item.subdir else None, item.subdir, item.index)
        else:
            w.write(item.raw, item.name, item.index)

    def flush(self) -> None:
        """Make everything written so far durable in the partial output."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        elif isinstance(self._writer, MaildirWriter):
            self._writer.sync()
        else:
            _fsync_dir(self.partial)

    def commit(self) -> None:
        """fsync and rename the partial output to the destination (atomic for a new destination)."""
        if self.done:
            return
        self.flush()
        if self._file is not None:
            self._file.close()
        old = None
        if self.path.exists():
            if not self.overwrite:
                raise InvalidArgument(f"{self.path} appeared while writing; partial output kept")
            if self.path.is_dir():
                old = self.path.with_name(f"{self.path.name}.old-{os.getpid()}")
                os.rename(self.path, old)
        os.replace(self.partial, self.path)
        _fsync_dir(self.path.parent)
        if old is not None:
            shutil.rmtree(old)
        self.done = True

    def abort(self) -> None:
        """Remove the partial output."""
        if self.done:
            return
        if self._file is not None:
            self._file.close()
        _remove(self.partial)
        self.done = True

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def open_sink(path: str | Path, fmt: str, *, overwrite: bool = False) -> Sink:
    """Start writing an archive at ``path`` in ``fmt`` (a source format is mapped with ``sink_format``)."""
    return Sink(path, sink_format(fmt), overwrite=overwrite)
