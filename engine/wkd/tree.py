"""The staging tree of a WKD build: files written by the workers, merged and finished by the parent.

Workers (:func:`write_rows`) create each address's file with ``O_EXCL`` in the fresh staging
directory, so no two processes ever write one file: the first key for an address wins the file, a later
one (another key for the same address, a few per cent of real keyrings) gets ``EEXIST`` and its bytes
go back to the parent. A worker sends each record as its file and its manifest entry as a file of this
key alone, formatted there (:func:`entry_text`). The parent (:class:`TreeWriter`) appends them in input
order to a temporary SQLite index beside the staging directory and spools the returned bytes to an
unlinked temporary file (memory stays flat whatever the number of addresses). At the end it first
rewrites the multi-key files (:meth:`TreeWriter.merge`: newest key first, then by fingerprint, the same
bytes whichever worker won), then walks the index sorted by domain and hash for the manifest, taking
the common file's entry as its worker made it, and hardlinks unchanged files of the previous version
(``--incremental``) and the direct tree for ``both``. Nothing is fsynced here: :mod:`engine.wkd.publish`
syncs the file system before the atomic switch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from json.decoder import scanstring
from pathlib import Path
from typing import IO, Any

from engine import _native
from engine.errors import InvalidArgument
from engine.wkd.build import METHODS, Packed, Record
from engine.wkd.validate import safe_name

__all__ = ["Slot", "TreeWriter", "close_dirs", "entry_text", "write_records", "write_rows"]

INDEX_PREFIX = ".wkd-index-"
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # as the manifest's
_made: set[str] = set()  # directories this process has created (one mkdir per domain, not per file)


def _overwrite(path: Path, data: bytes) -> None:
    """Rewrite a file of the staging tree (nobody's yet: no atomic replace needed) in place and cut it
    to its new length. No block is freed unless it shrinks past one: on ext4 freeing a written block
    can wait for a discard (mount option ``discard``), and a rename over a file or a cut to zero
    forces the new data out at once; either made each merge cost milliseconds after a sync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def write_records(root: str, method: str, records: Iterable[Record]) -> list[Record]:
    """Worker side: write each record's file unless it exists; written ones come back without bytes,
    with their file's SHA-256 (:func:`_create_files`, as :func:`write_rows`; the folders' descriptors
    are closed before returning)."""
    records = records if isinstance(records, list) else list(records)
    rows = [(rec.domain, rec.hash, rec.local, rec.address, rec.fingerprint, rec.created, rec.data, rec.status)
            for rec in records]  # fmt: skip
    dirs: dict[str, int] = {}
    try:
        taken = set(_create_files(root, method, rows, dirs))
    finally:
        close_dirs(dirs)
    out = []
    for i, rec in enumerate(records):
        if i in taken:
            out.append(rec)  # another key for this address: the parent merges
            continue
        sha = hashlib.sha256(rec.data).hexdigest()
        out.append(
            Record(rec.domain, rec.hash, rec.local, rec.address, rec.fingerprint, rec.created, b"",
                   rec.status, rec.size, sha, True)
        )  # fmt: skip
    return out


def write_rows(
    root: str, method: str, records: Iterable[tuple], out: Packed, dirs: dict[str, int] | None = None
) -> None:
    """:func:`write_records` for :func:`engine.wkd.build.select_packed`: ``records`` as tuples
    ``(domain, hash, local, address, fingerprint, created, data, status)``; each one's index row, with
    its manifest entry as a file of one key (:func:`entry_text`), is appended to ``out`` (see
    :class:`engine.wkd.build.Packed`). The files of each domain are made in one call of the wkd kernel's
    ``create_files`` (a C loop of ``openat``/``write``/``close``). ``dirs`` (domain -> open descriptor of
    its ``hu`` folder) lets a caller keep the descriptors across calls and close them itself
    (:func:`close_dirs`); without it they are closed before returning."""
    own = dirs is None
    if dirs is None:
        dirs = {}
    records = records if isinstance(records, list) else list(records)
    rows, domains = out.rows, out.domains
    first = len(rows)
    # The entries first, then the files: this code ran measurably slower between file creations.
    sha256 = hashlib.sha256
    texts = _entry_texts(method, records, [sha256(rec[6]).hexdigest() for rec in records])
    rows += [(rec[0], rec[1], text, None, None) for rec, text in zip(records, texts, strict=True)]
    try:
        # records whose file exists: another key for this address, the parent merges
        for i in _create_files(root, method, records, dirs, domains):
            out.unwritten.append(first + i)
            rows[first + i] = (*rows[first + i][:3], records[i][6], None)
    finally:
        if own:
            close_dirs(dirs)


def _create_files(
    root: str, method: str, rows: list[tuple], dirs: dict[str, int], domains: set[str] | None = None
) -> list[int]:
    """Create the file of each row (a :func:`write_rows` tuple: name ``row[1]``, bytes ``row[6]``) in
    the ``hu`` folder of its domain, with ``O_EXCL``: one call of the wkd kernel's ``create_files`` (a C
    loop of ``openat``/``write``/``close``) per domain, through the descriptors of ``dirs`` (domain ->
    open folder; those missing are opened into it, :func:`_open_hu`). The domains are added to
    ``domains``. Returns the indexes of the rows whose file existed already, in order."""
    create_files = _native.kernel("wkd").create_files
    taken: list[int] = []
    for domain, group in _by_domain(rows):
        dfd = dirs.get(domain)
        if dfd is None:
            dfd = dirs[domain] = _open_hu(root, method, domain)
        if domains is not None:
            domains.add(domain)
        got = create_files(dfd, rows if group is None else [rows[i] for i in group], 1, 6)
        taken += got if group is None else [group[i] for i in got]
    return sorted(taken)


def _by_domain(records: list[tuple]) -> list[tuple[str, list[int] | None]]:
    """The domains of ``records`` in order of appearance, each with the indexes of its records (None:
    every record, the common batch of one domain)."""
    if not records:
        return []
    first = records[0][0]
    if all(rec[0] == first for rec in records):
        return [(first, None)]
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(rec[0], []).append(i)
    return list(groups.items())


def _paths(method: str, domain: str, hashed: str) -> dict[str, str]:
    """Relative paths (under ``.well-known/openpgpkey``) of an address's file per method."""
    out = {}
    if method != "direct":
        out["advanced"] = f"{domain}/hu/{hashed}"
    if method != "advanced":
        out["direct"] = f"hu/{hashed}"
    return out


def _entry(
    method: str, domain: str, hashed: str, local: str, address: str, keys: list[tuple[str, int]],
    status: list[str], sha: str,
) -> dict[str, Any]:  # fmt: skip
    """The manifest entry of an address's file: its keys ``(fingerprint, created)`` in file order."""
    return {
        "address": address,
        "domain": domain,
        "local": local,
        "hash": hashed,
        "fingerprints": [k[0] for k in keys],
        "created": [k[1] for k in keys],
        "status": status,
        "sha256": sha,
        "paths": _paths(method, domain, hashed),
    }


def entry_text(
    method: str,
    domain: str,
    hashed: str,
    local: str,
    address: str,
    fpr: str,
    created: int,
    status: str,
    sha: str,
) -> str:
    """The manifest entry, as JSON text, of an address's file holding one key: exactly what ``json``
    writes for :meth:`TreeWriter.entry` of its slot (formatted directly by the wkd kernel's
    ``entry_texts`` unless something needs escaping; the address is ``ascii_lower(local)@domain``, so
    it needs escaping exactly when those do)."""
    record = (domain, hashed, local, address, fpr, created, b"", status)
    return _entry_texts(method, [record], [sha])[0]


def _entry_texts(method: str, records: list[tuple], shas: list[str]) -> list[str]:
    """:func:`entry_text` of each record (a :func:`write_rows` tuple) with its file's SHA-256: one
    kernel call, ``json`` for the rare address that needs escaping."""
    texts = _native.kernel("wkd").entry_texts(method, records, shas)
    for i, text in enumerate(texts):
        if text is None:
            domain, hashed, local, address, fpr, created, _, status = records[i]
            keys = [(fpr, created)]
            texts[i] = _ENCODE(_entry(method, domain, hashed, local, address, keys, [status], shas[i]))
    return texts


_ADDRESS_AT = len('{"address": "')
_SHA_KEY = '"sha256": "'


def _address_and_sha(entry: str) -> tuple[str, str]:
    """The address and file SHA-256 of an entry made by :func:`entry_text`, read without decoding it
    all (a quote inside a value is escaped, so the ``"sha256": "`` key is found only where it is)."""
    address = scanstring(entry, _ADDRESS_AT)[0]
    at = entry.rindex(_SHA_KEY) + len(_SHA_KEY)
    return address, entry[at : at + 64]


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
    """One published file the parent finishes (several keys, or bytes it writes): the address, its keys
    (fingerprint, created) and their status in file order, the file's SHA-256."""

    domain: str
    hash: str
    local: str
    address: str
    keys: list[tuple[str, int]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    sha256: str = ""
    pieces: list[tuple[int, int] | None] | None = None  # per key: spool (offset, size), None: the file
    file_fpr: str = ""  # whose bytes the file holds ("" while no file)


# One row per record: the address's file, the record's manifest entry as a file of one key
# (:func:`entry_text`), and where its bytes are in the spool (NULL: a worker wrote them into the file).
_SCHEMA = "CREATE TABLE rec (domain TEXT, hash TEXT, entry TEXT, off INTEGER, len INTEGER)"
_INSERT = "INSERT INTO rec VALUES (?,?,?,?,?)"
# The files of the rows with a spool piece (a few per cent): :meth:`TreeWriter.merge` finds them here,
# with one scan of rec instead of two.
_RETURNED_SCHEMA = "CREATE TABLE returned (domain TEXT, hash TEXT)"
_RETURNED_INSERT = "INSERT INTO returned VALUES (?,?)"
# A row a worker wrote the file of (no spool piece), without its two NULLs: binding them cost a third
# of the insert.
_INSERT_WRITTEN = "INSERT INTO rec (domain, hash, entry) VALUES (?,?,?)"
_HEAD = operator.itemgetter(0, 1, 2)


def _sorted(columns: str, one_domain: bool) -> str:
    """The query of each file's manifest entry (one row per file once :meth:`TreeWriter.merge` ran),
    sorted by domain and hash. With one domain, by hash alone: the same order, and SQLite's sorter then
    decides nearly every comparison on its first column (some 30 % less CPU than the domain first)."""
    return f"SELECT {columns} FROM rec ORDER BY {'hash' if one_domain else 'domain, hash'}, rowid"


# The files the parent writes (several keys, or bytes that came back), their rows in input order. The
# hash alone first: a probe of one column for each row of the scan, the pair only where it matches.
_TO_MERGE = (
    "SELECT rowid, * FROM rec WHERE hash IN (SELECT hash FROM returned) "
    "AND (domain, hash) IN (SELECT domain, hash FROM returned) ORDER BY domain, hash, rowid"
)
# Their rows once merged (collected while _TO_MERGE is read, applied after): the first row of each file
# takes its merged entry, the others (entry NULL here) are deleted, so rec holds one row per file and
# the sorted read needs no join.
_MERGED_SCHEMA = "CREATE TABLE merged (id INTEGER PRIMARY KEY, entry TEXT)"
_MERGED_INSERT = "INSERT INTO merged VALUES (?,?)"
_MERGED_APPLY = (
    "UPDATE rec SET entry = (SELECT entry FROM merged m WHERE m.id = rec.rowid) "
    "WHERE rowid IN (SELECT id FROM merged WHERE entry IS NOT NULL)",
    "DELETE FROM rec WHERE rowid IN (SELECT id FROM merged WHERE entry IS NULL)",
)
_TEXT = operator.itemgetter(2)
_FIRST = operator.itemgetter(0)
_FILE = operator.itemgetter(0, 1)
_MERGE_FILE = operator.itemgetter(1, 2)  # a merge row's file: (domain, hash), after its rowid


def _has_piece(row: tuple) -> bool:
    return row[3] is not None


_FLUSH_EVERY = 512
# 16 KiB pages (set before the first table): some 15 % less CPU to insert and to sort than 4 KiB ones.
_PRAGMAS = ("page_size=16384", "journal_mode=OFF", "synchronous=OFF", "cache_size=-2048", "temp_store=FILE")


class TreeWriter:
    """Collects the records of ``root`` (a staging ``openpgpkey`` directory) for ``method``.

    Records go to an append-only SQLite table in a temporary file beside ``root`` (removed by
    :meth:`close`); :meth:`finish_entries` reads them back sorted and grouped by file. ``previous`` maps
    a relative file path of the old version to ``(sha256, absolute path)``; files whose new content has
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
        for pragma in _PRAGMAS:
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(_SCHEMA)
        self._db.execute(_RETURNED_SCHEMA)
        self._pending: list[tuple[object, ...]] = []
        self._pending_pieces = 0  # rows in _pending whose bytes came back
        self._returned = 0  # records whose bytes came back (their file was taken): the merges to come
        self._merged = False
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

    def _flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            if self._pending_pieces:
                self._insert_mixed()
            else:  # the common flush: every file written by a worker, no per-row test
                self._db.executemany(_INSERT_WRITTEN, map(_HEAD, self._pending))
            self._db.execute("COMMIT")
            self._pending.clear()
            self._pending_pieces = 0

    def _insert_mixed(self) -> None:
        """Insert the pending rows, some with bytes that came back, in input order (rowid)."""
        for piece, rows in itertools.groupby(self._pending, _has_piece):
            if piece:
                rows = list(rows)
                self._db.executemany(_INSERT, rows)
                self._db.executemany(_RETURNED_INSERT, map(_FILE, rows))
            else:
                self._db.executemany(_INSERT_WRITTEN, map(_HEAD, rows))

    def add_packed(self, packed: Packed) -> None:
        """Take a worker's whole batch (:class:`engine.wkd.build.Packed`): rows straight to the index,
        the bytes of unwritten records to the spool."""
        rows = packed.rows
        # Every row's domain in self.domains (finish_entries sorts on it); a batch made by hand may not
        # name its domains.
        if not packed.domains <= self.domains or (rows and not packed.domains):
            for row in rows:  # in input order
                self._domain(row[0])
        if packed.unwritten:
            rows = list(rows)  # the packed batch stays as it came
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(dir=self.root.parent, prefix=".wkd-spool-")  # noqa: SIM115
            for i in packed.unwritten:
                domain, hashed, text, data, _ = rows[i]
                off = self._spool.seek(0, os.SEEK_END)
                self._spool.write(data)
                rows[i] = (domain, hashed, text, off, len(data))
        self.written += len(rows) - len(packed.unwritten)
        self._returned += len(packed.unwritten)
        self._pending_pieces += len(packed.unwritten)
        self._pending += rows
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush()

    def _slot(self, group: list[tuple], skip: Callable[[str, str], None]) -> Slot:
        """The slot of one file's rows (input order; rowid and columns, each row's fields read back from
        its entry); the same key twice is reported."""
        slot: Slot | None = None
        for _, domain, hashed, text, off, length in group:
            e = json.loads(text)
            fpr, created, status, written = e["fingerprints"][0], e["created"][0], e["status"][0], off is None
            if slot is None:
                slot = Slot(domain, hashed, e["local"], e["address"], [(fpr, created)], [status])
                slot.sha256 = e["sha256"] if written else ""
                slot.file_fpr = fpr if written else ""
                slot.pieces = None if written else [(off, length)]
                continue
            if slot.pieces is None:
                slot.pieces = [None]
            if written:
                slot.file_fpr = fpr
            if any(k[0] == fpr for k in slot.keys):
                self.duplicates += 1
                skip("same key twice", e["address"])
                continue
            slot.keys.append((fpr, created))
            slot.status.append(status)
            slot.pieces.append(None if written else (off, length))
        assert slot is not None
        return slot

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
        _overwrite(path, data)
        self.written += 0 if slot.file_fpr else 1
        slot.sha256 = hashlib.sha256(data).hexdigest()

    def _reuse(self, domain: str, hashed: str, sha256: str) -> None:
        rel = self._rel(domain, hashed)
        old = self.previous.get(rel)
        if old is None or old[0] != sha256:
            return
        tmp = self.root / f"{rel}.link"
        try:
            os.link(old[1], tmp)
        except OSError:
            return
        os.replace(tmp, self.root / rel)
        self.reused += 1
        self.written -= 1

    def _finish_file(self, domain: str, hashed: str, sha256: str) -> None:
        """Reuse the previous version's file when unchanged; link the direct tree (``both``)."""
        if self.previous:
            self._reuse(domain, hashed, sha256)
        if self.method == "both":
            os.link(self.root / self._rel(domain, hashed), self.root / "hu" / hashed)

    def merge(self, skip: Callable[[str, str], None] = lambda reason, what: None) -> None:
        """Write the files the workers could not (several keys for one address: newest key first, then
        by fingerprint), before the tree is synced; their manifest entries wait in the index for
        :meth:`finish_entries`. ``skip(reason, address)`` hears of dropped duplicates. Once only."""
        if self._merged:
            return
        self._merged = True
        self._flush()
        if not self._returned:  # every file written by a worker: nothing to merge
            return
        self._db.execute(_MERGED_SCHEMA)
        self._db.execute("BEGIN")  # one transaction, not a commit per row inserted into merged
        merged: list[tuple[int, str | None]] = []  # (rowid, its new entry; None: drop the row)
        for _, rows in itertools.groupby(self._db.execute(_TO_MERGE), _MERGE_FILE):
            group = list(rows)
            slot = self._slot(group, skip)
            self._merge(slot)
            merged.append((group[0][0], _ENCODE(self.entry(slot))))
            merged += [(row[0], None) for row in group[1:]]
            if len(merged) >= _FLUSH_EVERY:
                self._db.executemany(_MERGED_INSERT, merged)
                merged.clear()
        self._db.executemany(_MERGED_INSERT, merged)
        for statement in _MERGED_APPLY:
            self._db.execute(statement)
        self._db.execute("COMMIT")

    def finish_entries(
        self,
        skip: Callable[[str, str], None] = lambda reason, what: None,
        see: Callable[[str, str], None] | None = None,
        chunk: int = 128,
    ) -> Iterator[list[str]]:
        """:meth:`merge` (unless done), reuse unchanged files, link the direct tree; yields the manifest
        entries as JSON text sorted by domain and hash, in lists of up to ``chunk`` (consume them all).
        ``see(address, sha256)`` hears of each entry. A file of one key written by a worker keeps the
        entry its worker formatted."""
        self.merge(skip)
        plain = see is None and not self.previous and self.method != "both"
        one_domain = len(self.domains) == 1  # every row's domain is in self.domains (add_packed)
        cursor = self._db.execute(_sorted("entry" if plain else "domain, hash, entry", one_domain))
        pick = _FIRST if plain else _TEXT
        while rows := cursor.fetchmany(chunk):
            if not plain:
                for domain, hashed, text in rows:
                    address, sha256 = _address_and_sha(text)
                    self._finish_file(domain, hashed, sha256)
                    if see is not None:
                        see(address, sha256)
            self.addresses += len(rows)
            yield list(map(pick, rows))

    def entry(self, slot: Slot) -> dict[str, Any]:
        """The manifest entry of a finished slot."""
        return _entry(self.method, slot.domain, slot.hash, slot.local, slot.address, slot.keys, slot.status,
                      slot.sha256)  # fmt: skip

    def close(self) -> None:
        """Drop the index and the spool (idempotent)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._db.close()
        self._db_path.unlink(missing_ok=True)

    def paths(self, slot: Slot) -> dict[str, str]:
        """Relative paths (under ``.well-known/openpgpkey``) of a slot per method."""
        return _paths(self.method, slot.domain, slot.hash)
