"""A directory of ``.eml`` files, one message per file, read in sorted name order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InvalidArgument
from engine.mail.item import MailItem


def list_emldir(path: str | Path) -> list[str]:
    """Names of the ``.eml`` files in a directory (any case), sorted."""
    names = (e.name for e in os.scandir(path) if e.is_file() and not e.name.startswith("."))
    return sorted(n for n in names if n.lower().endswith(".eml"))


def is_emldir(path: str | Path) -> bool:
    """A directory with at least one ``.eml`` file."""
    return Path(path).is_dir() and bool(list_emldir(path))


def read_emldir(path: str | Path) -> Iterator[MailItem]:
    """Yield each ``.eml`` file as a message, bytes exact."""
    p = Path(path)
    for index, name in enumerate(list_emldir(p)):
        yield MailItem(index, (p / name).read_bytes(), None, 0, str(p / name), name=name)


class EmlDirWriter:
    """Write messages as ``.eml`` files (mode 0600, fsync), keeping names or numbering them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.count = 0

    def write(self, raw: bytes, name: str | None = None, index: int = 0) -> str:
        """Write one message; a source without ``.eml`` names gets ``NNNNNNNN.eml`` from its index."""
        final = name if name and name.lower().endswith(".eml") else f"{index:08d}.eml"
        if "/" in final or final.startswith("."):
            raise InvalidArgument(f"unsafe file name {final!r}")
        fd = os.open(self.path / final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(raw)
                f.flush()
            os.fsync(fd)
        finally:
            os.close(fd)
        self.count += 1
        return str(self.path / final)
