"""Maildir reading (``cur/`` and ``new/``) and writing (``tmp/`` + fsync + rename, mode 0600).

File names and ``:2,`` flags are kept. Dovecot records sizes in names (``,S=`` bytes on disk, ``,W=``
bytes with CRLF line endings); a writer that changes the bytes rewrites both to the new values so Dovecot
does not trust stale sizes.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InvalidArgument
from engine.mail.item import MailItem

SUBDIRS = ("cur", "new")
_SIZE_FIELD = re.compile(r",([SW])=\d+")


def is_maildir(path: str | Path) -> bool:
    """A directory holding ``cur``, ``new`` and ``tmp`` folders."""
    p = Path(path)
    return all((p / d).is_dir() for d in ("cur", "new", "tmp"))


def _sort_key(entry: tuple[str, str]) -> tuple[str, str, str]:
    subdir, name = entry
    base = name.split(":", 1)[0]
    return base.split(",", 1)[0], base, subdir


def list_maildir(path: str | Path) -> list[tuple[str, str]]:
    """``(subdir, name)`` of every message, ordered by unique name (delivery time first), then subdir."""
    p = Path(path)
    entries = []
    for sub in SUBDIRS:
        for entry in os.scandir(p / sub):
            if not entry.name.startswith(".") and entry.is_file():
                entries.append((sub, entry.name))
    return sorted(entries, key=_sort_key)


def read_maildir(path: str | Path) -> Iterator[MailItem]:
    """Yield every message of a Maildir, one file at a time, bytes exact."""
    p = Path(path)
    for index, (sub, name) in enumerate(list_maildir(p)):
        file = p / sub / name
        yield MailItem(index, file.read_bytes(), None, 0, str(file), name=name, subdir=sub)


def crlf_size(raw: bytes) -> int:
    """Size of ``raw`` with every bare LF counted as CRLF (Dovecot's ``W=``, the RFC 822 size)."""
    return len(raw) + raw.count(b"\n") - raw.count(b"\r\n")


def fix_sizes(name: str, raw: bytes) -> str:
    """Rewrite Dovecot ``,S=`` and ``,W=`` fields of a file name to match ``raw``; other names unchanged."""
    base, colon, info = name.partition(":")

    def repl(m: re.Match[str]) -> str:
        value = len(raw) if m.group(1) == "S" else crlf_size(raw)
        return f",{m.group(1)}={value}"

    return _SIZE_FIELD.sub(repl, base) + colon + info


class MaildirWriter:
    """Deliver messages into a Maildir: write in ``tmp/``, fsync, rename into ``cur/`` or ``new/``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        for sub in ("cur", "new", "tmp"):
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._stamp = int(time.time())
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self.count = 0

    def _new_name(self, index: int) -> str:
        return f"{self._stamp}.M{index:08d}P{os.getpid()}.{self._host}:2,"

    def write(self, raw: bytes, name: str | None = None, subdir: str | None = None, index: int = 0) -> str:
        """Write one message; keeps ``name`` (sizes fixed) and ``subdir``; returns the final path."""
        sub = subdir or "cur"
        if sub not in SUBDIRS:
            raise InvalidArgument(f"Maildir subdir must be 'cur' or 'new', not {sub!r}")
        final = fix_sizes(name, raw) if name else self._new_name(index)
        if "/" in final or final.startswith("."):
            raise InvalidArgument(f"unsafe Maildir file name {final!r}")
        tmp = self.path / "tmp" / final.partition(":")[0]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(raw)
                f.flush()
            os.fsync(fd)
        finally:
            os.close(fd)
        target = self.path / sub / final
        if target.exists():
            tmp.unlink()
            raise InvalidArgument(f"two messages share the Maildir name {final!r}")
        os.rename(tmp, target)
        self.count += 1
        return str(target)

    def sync(self) -> None:
        """fsync the folders so the renames themselves are durable."""
        for sub in ("cur", "new", "tmp", "."):
            fd = os.open(self.path / sub, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
