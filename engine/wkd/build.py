"""WKD build: choose what to publish from each certificate (in a worker) and write the tree (in the parent).

Worker side (:func:`select_batch`): parse a certificate, verify its self-signatures (the OpenPGP layer
does it once on read), and for each User ID decide: an address in a chosen domain, a valid
self-certification, key and User ID neither expired nor revoked unless asked. The result is one
:class:`Record` per published address carrying the minimal key (only that User ID, RFC draft section 3.1)
and one reason per address left out.

Parent side (:class:`TreeWriter`): write each record at once into the staging tree (constant memory:
only the index of paths stays), concatenate several keys for one address newest first, hardlink the
direct tree to the advanced one, and reuse unchanged files of the previous version (``--incremental``).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InvalidArgument, PgpBulkError
from engine.openpgp.keys import Cert, UserIDEntry, read_certs
from engine.wkd.hashing import wkd_hashes
from engine.wkd.sources import CertBlob
from engine.wkd.validate import normalize_address, safe_name

__all__ = ["METHODS", "BuildOptions", "CertResult", "Record", "TreeWriter", "select_batch", "select_cert"]

METHODS = ("advanced", "direct", "both")
OTHER_DOMAIN = "other domain"


@dataclass(frozen=True)
class BuildOptions:
    """What to publish: ``domains`` (None: every domain found), expired / revoked policy, the clock."""

    domains: frozenset[str] | None = None
    include_expired: bool = False
    include_revoked: bool = False
    now: int | None = None


@dataclass(frozen=True)
class Record:
    """One address to publish with one key: where it goes and the minimal key bytes."""

    domain: str
    hash: str
    local: str
    address: str
    fingerprint: str
    created: int
    data: bytes = field(repr=False)
    status: str = "valid"  # valid | expired | revoked


@dataclass
class CertResult:
    """What a worker made of one certificate blob."""

    source: str
    offset: int
    fingerprint: str = ""
    records: list[Record] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (reason, address or User ID)
    seconds_parse: float = 0.0
    seconds_select: float = 0.0


def _revocation_block(cert: Cert, entry: UserIDEntry) -> bytes:
    """Primary key, its revocations, the User ID with its self-signatures and revocations: no subkeys."""
    out = [cert.primary.serialize(), *(s.serialize() for s in cert.revocations), entry.uid.serialize()]
    newest = max(entry.self_signatures, key=lambda s: s.created, default=None)
    if newest is not None:
        out.append(newest.serialize())
    out += [s.serialize() for s in entry.revocations]
    return b"".join(out)


def _minimal(cert: Cert, entry: UserIDEntry, at: int) -> bytes:
    """What ``Cert.minimal`` gives, for an entry already chosen (``minimal`` searches the User IDs
    again on every call, which is quadratic on a key with thousands of them)."""
    sig = entry.self_signature(at)
    if sig is None:
        raise InvalidArgument(f"no valid self-signature on {entry.text!r}")
    out = [cert.primary.serialize(), *(s.serialize() for s in cert.revocations)]
    direct = [s for s in cert.direct_signatures if s.created <= at and not s.expired_at(at)]
    if direct:
        out.append(max(direct, key=lambda s: s.created).serialize())
    out += [entry.uid.serialize(), sig.serialize()]
    for sub in cert.subkeys:
        binding = sub.binding(at)
        if sub.valid_at(at) and binding is not None:
            out += [sub.key.serialize(), binding.serialize()]
    return b"".join(out)


def _uid_state(entry: UserIDEntry, at: int, key_created: int) -> str | None:
    """None when the User ID is usable at ``at``; else why not."""
    if not entry.self_signatures:
        return "no valid self-signature"
    sig = entry.self_signature(at)
    if sig is None:
        return "self-signature expired or not yet valid"
    if sig.created < key_created:  # GnuPG ignores it ("signature older than key"), so would clients
        return "self-signature older than the key"
    if not entry.valid_at(at):
        return "user id revoked"
    return None


def select_cert(cert: Cert, opts: BuildOptions, result: CertResult) -> None:
    """Append to ``result`` a record per publishable address of ``cert`` and a reason per other one."""
    now = int(time.time()) if opts.now is None else opts.now
    fpr = cert.fingerprint_hex
    exp = cert.expires_at(now)
    expired = exp is not None and exp <= now
    at = exp - 1 if expired and exp is not None else now  # judge an expired key as it was last valid
    key_revoked = cert.is_revoked(now)
    key_problem = None
    if cert.primary.created > now:
        key_problem = "key created in the future"
    elif key_revoked and not opts.include_revoked:
        key_problem = "key revoked"
    elif expired and not opts.include_expired:
        key_problem = "key expired"
    best: dict[str, tuple[tuple[int, int], UserIDEntry, str, str, str]] = {}
    for entry in cert.user_ids:
        if entry.uid.attribute:
            continue
        email = entry.email
        if email is None:
            result.skipped.append(("no mail address in user id", entry.text[:80]))
            continue
        try:
            local, domain, address = normalize_address(email)
        except InvalidArgument as exc:
            result.skipped.append((f"refused address: {exc}", repr(email[:200])))
            continue
        if opts.domains is not None and domain not in opts.domains:
            result.skipped.append((OTHER_DOMAIN, address))
            continue
        problem = key_problem or _uid_state(entry, at, cert.primary.created)
        if problem == "user id revoked" and opts.include_revoked:
            problem = None
        if problem:
            result.skipped.append((problem, address))
            continue
        sig = entry.self_signature(at)
        rank = (int(bool(sig and sig.primary_uid)), sig.created if sig else 0)
        if address not in best or rank > best[address][0]:
            best[address] = (rank, entry, local, domain, address)
    if not best:
        return
    hashes = wkd_hashes([b[2] for b in best.values()])
    for (_, entry, local, domain, address), hashed in zip(best.values(), hashes, strict=True):
        uid_revoked = not entry.valid_at(at)
        if key_revoked or uid_revoked:
            data, status = _revocation_block(cert, entry), "revoked"
        else:
            data, status = _minimal(cert, entry, at), "expired" if expired else "valid"
        result.records.append(Record(domain, hashed, local, address, fpr, cert.primary.created, data, status))


def select_one(opts: BuildOptions, blob: CertBlob) -> CertResult:
    """Parse, verify and select one certificate blob; never raises for bad input (it is reported)."""
    result = CertResult(blob.source, blob.offset)
    result.skipped += [("oversized packet dropped", note) for note in blob.notes]
    t0 = time.perf_counter()
    try:
        certs = read_certs(blob.data, blob.source)
    except (PgpBulkError, ValueError) as exc:
        result.skipped.append(("unreadable key", f"{blob.source} byte {blob.offset}: {exc}"))
        return result
    t1 = time.perf_counter()
    result.seconds_parse = t1 - t0
    for cert in certs:
        result.fingerprint = cert.fingerprint_hex
        try:
            select_cert(cert, opts, result)
        except (PgpBulkError, ValueError) as exc:
            result.skipped.append(("unusable key", f"{cert.fingerprint_hex}: {exc}"))
    result.seconds_select = time.perf_counter() - t1
    return result


def select_batch(opts: BuildOptions, blobs: list[CertBlob]) -> list[CertResult]:
    """Worker entry point: :func:`select_one` over a batch (``functools.partial(select_batch, opts)``)."""
    return [select_one(opts, blob) for blob in blobs]


@dataclass
class Slot:
    """One published file: the address, its keys (fingerprint, created, size) in file order, SHA-256."""

    domain: str
    hash: str
    local: str
    address: str
    keys: list[tuple[str, int, int]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    sha256: str = ""
    linked: bool = False  # hardlinked to the previous version: copy before changing


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class TreeWriter:
    """Writes records into ``root`` (a staging ``openpgpkey`` directory) for ``method``.

    ``previous`` maps a relative file path of the old version to ``(sha256, absolute path)``; files whose
    new content has the same SHA-256 are hardlinked from there instead of written.
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
        self.reused = self.written = 0
        self.duplicates = 0
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

    def _place(self, rel: str, data: bytes, slot: Slot) -> None:
        """Write ``data`` at ``rel`` (new file), or hardlink the previous version's identical file."""
        slot.sha256 = hashlib.sha256(data).hexdigest()
        path = self.root / rel
        old = self.previous.get(rel)
        if old is not None and old[0] == slot.sha256:
            try:
                os.link(old[1], path)
                slot.linked = True
                self.reused += 1
                return
            except OSError:
                pass
        _write_new(path, data)
        self.written += 1

    def add(self, rec: Record) -> str | None:
        """Publish one record; returns a reason when it is left out (the same key twice for one address)."""
        self._domain(rec.domain)
        key = (rec.domain, rec.hash)
        slot = self.slots.get(key)
        if slot is None:
            slot = Slot(rec.domain, rec.hash, rec.local, rec.address)
            slot.keys.append((rec.fingerprint, rec.created, len(rec.data)))
            slot.status.append(rec.status)
            self.slots[key] = slot
            self._place(self._rel(rec.domain, rec.hash), rec.data, slot)
            return None
        if any(k[0] == rec.fingerprint for k in slot.keys):
            self.duplicates += 1
            return "same key twice"
        path = self.root / self._rel(rec.domain, rec.hash)
        old = path.read_bytes()
        path.unlink()  # never append to a file shared with the previous version
        if slot.linked:
            self.reused, self.written, slot.linked = self.reused - 1, self.written + 1, False
        _write_new(path, old + rec.data)
        slot.keys.append((rec.fingerprint, rec.created, len(rec.data)))
        slot.status.append(rec.status)
        return None

    def _reorder(self, slot: Slot) -> None:
        """Several keys for one address: newest first (then by fingerprint, for a stable output)."""
        rel = self._rel(slot.domain, slot.hash)
        data = (self.root / rel).read_bytes()
        pieces, pos = [], 0
        for (fpr, created, size), status in zip(slot.keys, slot.status, strict=True):
            pieces.append((-created, fpr, data[pos : pos + size], (fpr, created, size), status))
            pos += size
        pieces.sort(key=lambda p: (p[0], p[1]))
        slot.keys = [p[3] for p in pieces]
        slot.status = [p[4] for p in pieces]
        (self.root / rel).unlink()
        self.written -= 1
        self._place(rel, b"".join(p[2] for p in pieces), slot)

    def finish(self) -> list[Slot]:
        """Order multi-key files, link the direct tree for ``both``; the slots sorted by domain, hash."""
        for slot in self.slots.values():
            if len(slot.keys) > 1:
                self._reorder(slot)
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
