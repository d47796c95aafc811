"""The staging tree of a WKD build: files written by the workers, merged and finished by the parent.

Workers (:func:`write_records`) create each address's file with ``O_EXCL`` in the fresh staging
directory, so no two processes ever write one file: the first key for an address wins the file, a later
one (another key for the same address, a few per cent of real keyrings) gets ``EEXIST`` and its bytes
go back to the parent. The parent (:class:`TreeWriter`) receives every record's metadata in input
order, spools the returned bytes to an unlinked temporary file (memory stays flat), and at the end
rewrites only the multi-key files (newest key first, then by fingerprint: the same bytes whichever
worker won), hardlinks unchanged files of the previous version (``--incremental``) and the direct tree
for ``both``. Nothing is fsynced here: :mod:`engine.wkd.publish` syncs the file system once before the
atomic switch.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from engine.errors import InvalidArgument
from engine.wkd.build import METHODS, Record
from engine.wkd.validate import safe_name

__all__ = ["Slot", "TreeWriter", "write_records"]

_made: set[str] = set()  # directories this process has created (one mkdir per domain, not per file)


def _write_new(path: str | Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_records(root: str, method: str, records: Iterable[Record]) -> list[Record]:
    """Worker side: write each record's file unless it exists; written ones come back without bytes."""
    out = []
    for rec in records:
        folder = os.path.join(root, "hu") if method == "direct" else os.path.join(root, rec.domain, "hu")
        if folder not in _made:
            os.makedirs(os.path.join(root, safe_name(rec.domain)), exist_ok=True)
            os.makedirs(folder, exist_ok=True)
            _made.add(folder)
        try:
            _write_new(os.path.join(folder, rec.hash), rec.data)
        except FileExistsError:
            out.append(rec)  # another key for this address: the parent merges
            continue
        out.append(replace(rec, data=b"", sha256=hashlib.sha256(rec.data).hexdigest(), written=True))
    return out


@dataclass(slots=True)
class Slot:
    """One published file: the address, its keys (fingerprint, created, size) in file order, SHA-256."""

    domain: str
    hash: str
    local: str
    address: str
    keys: list[tuple[str, int, int]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    sha256: str = ""
    pieces: list[tuple[int, int] | None] | None = None  # per key: spool (offset, size), None: the file
    file_fpr: str = ""  # whose bytes the file holds ("" while no file)


class TreeWriter:
    """Collects the records of ``root`` (a staging ``openpgpkey`` directory) for ``method``.

    ``previous`` maps a relative file path of the old version to ``(sha256, absolute path)``; files whose
    new content has the same SHA-256 are hardlinked from there.
    """

    def __init__(
        self,
        root: Path,
        method: str,
        policy: bytes,
        domains: Iterable[str] = (),
        previous: dict[str, tuple[str, Path]] | None = None,
    ) -> None:
        if method not in METHODS:
            raise InvalidArgument(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
        self.root, self.method, self.policy = root, method, policy
        self.previous = previous or {}
        self.slots: dict[tuple[str, str], Slot] = {}
        self.domains: set[str] = set()
        self.direct_domain: str | None = None
        self.reused = self.written = self.duplicates = 0
        self._spool: IO[bytes] | None = None
        for d in domains:
            self._domain(d)

    def _rel(self, domain: str, hashed: str) -> str:
        return f"{domain}/hu/{hashed}" if self.method != "direct" else f"hu/{hashed}"

    def _domain(self, domain: str) -> None:
        if domain in self.domains:
            return
        safe_name(domain)
        if self.method != "advanced":
            if self.direct_domain not in (None, domain):
                raise InvalidArgument(
                    f"the direct method serves one domain per web root; found {self.direct_domain} and "
                    f"{domain}: name one with --domain, or use --method advanced"
                )
            self.direct_domain = domain
            (self.root / "hu").mkdir(exist_ok=True)
            (self.root / "policy").write_bytes(self.policy)
        if self.method != "direct":
            (self.root / domain / "hu").mkdir(parents=True, exist_ok=True)
            (self.root / domain / "policy").write_bytes(self.policy)
        self.domains.add(domain)

    def _keep(self, rec: Record) -> tuple[int, int] | None:
        """Where this record's bytes are: None for the file (written by a worker), else spooled."""
        if rec.written:
            self.written += 1
            return None
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(dir=self.root.parent, prefix=".wkd-spool-")  # noqa: SIM115
        offset = self._spool.seek(0, os.SEEK_END)
        self._spool.write(rec.data)
        return offset, len(rec.data)

    def add(self, rec: Record) -> str | None:
        """Take one record; returns a reason when it is left out (the same key twice for one address)."""
        self._domain(rec.domain)
        key = (rec.domain, rec.hash)
        slot = self.slots.get(key)
        piece = self._keep(rec)
        if slot is None:
            slot = Slot(
                rec.domain, rec.hash, rec.local, rec.address, [(rec.fingerprint, rec.created, rec.size)]
            )
            slot.status.append(rec.status)
            slot.sha256, slot.file_fpr = rec.sha256, rec.fingerprint if rec.written else ""
            if not rec.written:
                slot.pieces = [piece]
            self.slots[key] = slot
            return None
        if slot.pieces is None:
            slot.pieces = [None]
        if rec.written:
            slot.file_fpr = rec.fingerprint
        if any(k[0] == rec.fingerprint for k in slot.keys):
            self.duplicates += 1
            return "same key twice"
        slot.keys.append((rec.fingerprint, rec.created, rec.size))
        slot.status.append(rec.status)
        slot.pieces.append(piece)
        return None

    def _merge(self, slot: Slot) -> None:
        """Rewrite a file from its kept pieces: newest key first (then by fingerprint)."""
        path = self.root / self._rel(slot.domain, slot.hash)
        on_disk = path.read_bytes() if slot.file_fpr else b""
        parts = []
        assert slot.pieces is not None
        for k, status, piece in zip(slot.keys, slot.status, slot.pieces, strict=True):
            if piece is None:
                data = on_disk if k[0] == slot.file_fpr else b""
            else:
                assert self._spool is not None
                self._spool.seek(piece[0])
                data = self._spool.read(piece[1])
            parts.append((-k[1], k[0], data, k, status))
        parts.sort(key=lambda p: (p[0], p[1]))
        data = b"".join(p[2] for p in parts)
        slot.keys, slot.status, slot.pieces = [p[3] for p in parts], [p[4] for p in parts], None
        tmp = path.with_name(f".{slot.hash}.merge")
        _write_new(tmp, data)
        os.replace(tmp, path)
        self.written += 0 if slot.file_fpr else 1
        slot.sha256 = hashlib.sha256(data).hexdigest()

    def _reuse(self, slot: Slot) -> None:
        rel = self._rel(slot.domain, slot.hash)
        old = self.previous.get(rel)
        if old is None or old[0] != slot.sha256:
            return
        tmp = self.root / f"{rel}.link"
        try:
            os.link(old[1], tmp)
        except OSError:
            return
        os.replace(tmp, self.root / rel)
        self.reused += 1
        self.written -= 1

    def finish(self) -> list[Slot]:
        """Merge multi-key files, reuse unchanged ones, link the direct tree; slots sorted by domain, hash."""
        for slot in self.slots.values():
            if slot.pieces is not None:
                self._merge(slot)
            if self.previous:
                self._reuse(slot)
        if self._spool is not None:
            self._spool.close()
        if self.method == "both":
            for slot in self.slots.values():
                os.link(self.root / self._rel(slot.domain, slot.hash), self.root / "hu" / slot.hash)
        return sorted(self.slots.values(), key=lambda s: (s.domain, s.hash))

    def paths(self, slot: Slot) -> dict[str, str]:
        """Relative paths (under ``.well-known/openpgpkey``) of a slot per method."""
        out = {}
        if self.method != "direct":
            out["advanced"] = f"{slot.domain}/hu/{slot.hash}"
        if self.method != "advanced":
            out["direct"] = f"hu/{slot.hash}"
        return out
