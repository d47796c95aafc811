"""The staging tree of a WKD build: files written by the workers, merged and finished by the parent.

Workers (:func:`write_records`) create each address's file with ``O_EXCL`` in the fresh staging
directory, so no two processes ever write one file: the first key for an address wins the file, a later
one (another key for the same address, a few per cent of real keyrings) gets ``EEXIST`` and its bytes
go back to the parent. The parent (:class:`TreeWriter`) receives every record's metadata in input
order and appends it to a temporary SQLite index beside the staging directory, spools the returned
bytes to an unlinked temporary file (memory stays flat whatever the number of addresses), and at the
end walks the index sorted by domain and hash, rewriting only the multi-key files (newest key first, then by fingerprint: the same bytes whichever
worker won), hardlinks unchanged files of the previous version (``--incremental``) and the direct tree
for ``both``. Nothing is fsynced here: :mod:`engine.wkd.publish` syncs the file system once before the
atomic switch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from engine.errors import InvalidArgument
from engine.wkd.build import METHODS, Packed, Record
from engine.wkd.validate import safe_name

__all__ = ["Slot", "TreeWriter", "close_dirs", "write_records", "write_rows"]

INDEX_PREFIX = ".wkd-index-"
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # as the manifest's
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\\"]').search  # what ``json`` escapes with ensure_ascii=False
_made: set[str] = set()  # directories this process has created (one mkdir per domain, not per file)


def _write_new(path: str | Path, data: bytes, dir_fd: int | None = None) -> None:
    fd = os.open(path, _NEW_FILE, 0o644, dir_fd=dir_fd)
    try:
        done = os.write(fd, data)  # one call for a key file; the loop only for a short write
        if done < len(data):
            view = memoryview(data)[done:]
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def write_records(root: str, method: str, records: Iterable[Record]) -> list[Record]:
    """Worker side: write each record's file unless it exists; written ones come back without bytes.

    Files are created relative to an open descriptor of their ``hu`` folder (no path walk per file),
    one ``write`` each; the descriptors are closed before returning."""
    out = []
    dirs: dict[str, int] = {}
    try:
        for rec in records:
            folder = os.path.join(root, "hu") if method == "direct" else os.path.join(root, rec.domain, "hu")
            dfd = dirs.get(folder)
            if dfd is None:
                if folder not in _made:
                    os.makedirs(os.path.join(root, safe_name(rec.domain)), exist_ok=True)
                    os.makedirs(folder, exist_ok=True)
                    _made.add(folder)
                dfd = dirs[folder] = os.open(
                    folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
                )
            try:
                _write_new(rec.hash, rec.data, dfd)
            except FileExistsError:
                out.append(rec)  # another key for this address: the parent merges
                continue
            sha = hashlib.sha256(rec.data).hexdigest()
            out.append(
                Record(rec.domain, rec.hash, rec.local, rec.address, rec.fingerprint, rec.created, b"",
                       rec.status, rec.size, sha, True)
            )  # fmt: skip
    finally:
        for dfd in dirs.values():
            os.close(dfd)
    return out


def write_rows(
    root: str, method: str, records: Iterable[tuple], out: Packed, dirs: dict[str, int] | None = None
) -> None:
    """:func:`write_records` for :func:`engine.wkd.build.select_packed`: ``records`` as tuples
    ``(domain, hash, local, address, fingerprint, created, data, status)``; each one's index row is
    appended to ``out`` (see :class:`engine.wkd.build.Packed`). ``dirs`` (domain -> open descriptor of
    its ``hu`` folder) lets a caller keep the descriptors across calls and close them itself
    (:func:`close_dirs`); without it they are closed before returning."""
    own = dirs is None
    if dirs is None:
        dirs = {}
    rows, domains = out.rows, out.domains
    try:
        for domain, hashed, local, address, fpr, created, data, status in records:
            dfd = dirs.get(domain)
            if dfd is None:
                dfd = dirs[domain] = _open_hu(root, method, domain)
            domains.add(domain)
            try:
                _write_new(hashed, data, dfd)
            except FileExistsError:  # another key for this address: the parent merges
                out.unwritten.append(len(rows))
                rows.append(
                    (domain, hashed, local, address, fpr, created, len(data), status, "", 0, data, None)
                )
                continue
            sha = hashlib.sha256(data).hexdigest()
            rows.append((domain, hashed, local, address, fpr, created, len(data), status, sha, 1, None, None))
    finally:
        if own:
            close_dirs(dirs)


def _open_hu(root: str, method: str, domain: str) -> int:
    """An open descriptor of the ``hu`` folder of ``domain`` under ``root`` (created once per process)."""
    folder = os.path.join(root, "hu") if method == "direct" else os.path.join(root, domain, "hu")
    if folder not in _made:
        os.makedirs(os.path.join(root, safe_name(domain)), exist_ok=True)
        os.makedirs(folder, exist_ok=True)
        _made.add(folder)
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))


def close_dirs(dirs: dict[str, int]) -> None:
    """Close the descriptors :func:`write_rows` opened into ``dirs`` (and forget them)."""
    for dfd in dirs.values():
        os.close(dfd)
    dirs.clear()


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


_SCHEMA = (
    "CREATE TABLE rec (domain TEXT, hash TEXT, local TEXT, address TEXT, fpr TEXT, created INTEGER, "
    "size INTEGER, status TEXT, sha256 TEXT, written INTEGER, off INTEGER, len INTEGER)"
)
_INSERT = "INSERT INTO rec VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_SORTED = "SELECT * FROM rec ORDER BY domain, hash, rowid"
_FLUSH_EVERY = 512


class TreeWriter:
    """Collects the records of ``root`` (a staging ``openpgpkey`` directory) for ``method``.

    Records go to an append-only SQLite table in a temporary file beside ``root`` (removed by
    :meth:`close`); :meth:`finish` reads them back sorted and grouped by file. ``previous`` maps a
    relative file path of the old version to ``(sha256, absolute path)``; files whose new content has
    the same SHA-256 are hardlinked from there.
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
        self.domains: set[str] = set()
        self.direct_domain: str | None = None
        self.reused = self.written = self.duplicates = self.addresses = 0
        self._spool: IO[bytes] | None = None
        fd, name = tempfile.mkstemp(prefix=INDEX_PREFIX, suffix=".sqlite", dir=root.parent)
        os.close(fd)
        self._db_path = Path(name)
        self._db = sqlite3.connect(name, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-2048", "temp_store=FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(_SCHEMA)
        self._pending: list[tuple[object, ...]] = []
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

    def add(self, rec: Record) -> None:
        """Take one record (its bytes spooled unless a worker wrote its file)."""
        self._domain(rec.domain)
        off = length = None
        if rec.written:
            self.written += 1
        else:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(dir=self.root.parent, prefix=".wkd-spool-")  # noqa: SIM115
            off = self._spool.seek(0, os.SEEK_END)
            self._spool.write(rec.data)
            length = len(rec.data)
        row = (rec.domain, rec.hash, rec.local, rec.address, rec.fingerprint, rec.created, rec.size)
        self._pending.append((*row, rec.status, rec.sha256, int(rec.written), off, length))
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany(_INSERT, self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()

    def add_packed(self, packed: Packed) -> None:
        """Take a worker's whole batch (:class:`engine.wkd.build.Packed`): rows straight to the index,
        the bytes of unwritten records to the spool."""
        rows = packed.rows
        if not packed.domains <= self.domains:
            for row in rows:  # in input order, as :meth:`add` meets them
                self._domain(row[0])
        if packed.unwritten:
            rows = list(rows)  # the packed batch stays as it came
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(dir=self.root.parent, prefix=".wkd-spool-")  # noqa: SIM115
            for i in packed.unwritten:
                row = rows[i]
                data = row[10]
                off = self._spool.seek(0, os.SEEK_END)
                self._spool.write(data)
                rows[i] = (*row[:10], off, len(data))
        self.written += len(rows) - len(packed.unwritten)
        self._pending += rows
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush()

    def _groups(self) -> Iterator[list[tuple]]:
        """The index rows sorted by (domain, hash), grouped by file."""
        self._flush()
        group: list[tuple] | None = None
        for row in self._db.execute(_SORTED):
            if group is not None:
                first = group[0]
                if row[1] == first[1] and row[0] == first[0]:
                    group.append(row)
                    continue
                yield group
            group = [row]
        if group is not None:
            yield group

    def _slot(self, group: list[tuple], skip: Callable[[str, str], None]) -> Slot:
        """The slot of one file's rows; the same key twice is reported."""
        domain, hashed, local, address, fpr, created, size, status, sha, written, off, length = group[0]
        slot = Slot(domain, hashed, local, address, [(fpr, created, size)], [status], sha or "")
        slot.file_fpr = fpr if written else ""
        slot.pieces = None if written else [(off, length)]
        for row in group[1:]:
            domain, hashed, local, address, fpr, created, size, status, sha, written, off, length = row
            if slot.pieces is None:
                slot.pieces = [None]
            if written:
                slot.file_fpr = fpr
            if any(k[0] == fpr for k in slot.keys):
                self.duplicates += 1
                skip("same key twice", address)
                continue
            slot.keys.append((fpr, created, size))
            slot.status.append(status)
            slot.pieces.append(None if written else (off, length))
        return slot

    def _slots(self, skip: Callable[[str, str], None]) -> Iterator[Slot]:
        """The index grouped by file, sorted by (domain, hash); the same key twice is reported."""
        for group in self._groups():
            yield self._slot(group, skip)

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

    def _finish_slot(self, slot: Slot) -> None:
        if slot.pieces is not None:
            self._merge(slot)
        if self.previous:
            self._reuse(slot)
        if self.method == "both":
            os.link(self.root / self._rel(slot.domain, slot.hash), self.root / "hu" / slot.hash)
        self.addresses += 1

    def finish(self, skip: Callable[[str, str], None] = lambda reason, what: None) -> Iterator[Slot]:
        """Merge multi-key files, reuse unchanged ones, link the direct tree; yields the slots sorted by
        domain and hash, one at a time (consume them all); ``skip(reason, address)`` hears of dropped
        duplicates."""
        for slot in self._slots(skip):
            self._finish_slot(slot)
            yield slot

    def finish_entries(
        self, skip: Callable[[str, str], None] = lambda reason, what: None, chunk: int = 128
    ) -> Iterator[list[tuple[str, str, str]]]:
        """:meth:`finish` yielding lists of up to ``chunk`` ``(address, sha256, manifest entry as JSON)``
        in slot order: the common file (one key, written by a worker, nothing to reuse or link) goes
        without a :class:`Slot` and its entry is formatted directly, the text ``json`` writes for
        :meth:`entry`."""
        self._flush()
        simple = not self.previous and self.method != "both"
        advanced = self.method == "advanced"
        out: list[tuple[str, str, str]] = []
        group: list[tuple] = []
        for row in itertools.chain(self._db.execute(_SORTED), ((None, None),)):
            if group:
                first = group[0]
                if row[1] == first[1] and row[0] == first[0]:
                    group.append(row)
                    continue
                # the address is ``ascii_lower(local)@domain`` (normalize_address): it needs escaping
                # exactly when the local part or the domain does
                if simple and len(group) == 1 and first[9] and _NEEDS_ESCAPE(first[3]) is None:
                    domain, hashed, local, address, fpr, created, _, status, sha = first[:9]
                    path = f'"advanced": "{domain}/hu/{hashed}"' if advanced else f'"direct": "hu/{hashed}"'
                    out.append((address, sha, (
                        f'{{"address": "{address}", "domain": "{domain}", "local": "{local}", "hash": "{hashed}", '
                        f'"fingerprints": ["{fpr}"], "created": [{int(created)}], "status": ["{status}"], '
                        f'"sha256": "{sha}", "paths": {{{path}}}}}'
                    )))  # fmt: skip
                    self.addresses += 1
                else:
                    slot = self._slot(group, skip)
                    self._finish_slot(slot)
                    out.append((slot.address, slot.sha256, _ENCODE(self.entry(slot))))
                if len(out) >= chunk:
                    yield out
                    out = []
            group = [row]
        if out:
            yield out

    def entry(self, slot: Slot) -> dict[str, Any]:
        """The manifest entry of a finished slot."""
        return {
            "address": slot.address,
            "domain": slot.domain,
            "local": slot.local,
            "hash": slot.hash,
            "fingerprints": [k[0] for k in slot.keys],
            "created": [k[1] for k in slot.keys],
            "status": slot.status,
            "sha256": slot.sha256,
            "paths": self.paths(slot),
        }

    def close(self) -> None:
        """Drop the index and the spool (idempotent)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._db.close()
        self._db_path.unlink(missing_ok=True)

    def paths(self, slot: Slot) -> dict[str, str]:
        """Relative paths (under ``.well-known/openpgpkey``) of a slot per method."""
        out = {}
        if self.method != "direct":
            out["advanced"] = f"{slot.domain}/hu/{slot.hash}"
        if self.method != "advanced":
            out["direct"] = f"hu/{slot.hash}"
        return out
