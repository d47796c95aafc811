"""WKD build, worker side: choose what to publish from each certificate and write it into the tree.

:func:`select_batch` runs in a worker: for each certificate and each User ID it decides (an address in
a chosen domain, a valid self-certification, key and User ID neither expired nor revoked unless asked)
and makes one :class:`Record` per published address carrying the minimal key (only that User ID, draft
section 3.1), and one reason per address left out. The lean path (:mod:`engine.wkd.lean_select`)
verifies only the signatures it needs; :func:`select_cert` over a full :class:`Cert` is the reference
and the fallback for unusual certificates. With ``BuildOptions.root`` set, the worker also writes each
record's file itself (:func:`engine.wkd.tree.write_records`) and sends back only its metadata; the
parent (:class:`engine.wkd.tree.TreeWriter`) merges the rare addresses held by several keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from engine.errors import InvalidArgument, PgpBulkError
from engine.openpgp.keys import Cert, UserIDEntry, read_certs
from engine.wkd.hashing import wkd_hashes
from engine.wkd.lean import LeanCert, Unusual
from engine.wkd.lean_select import (
    Prepared,
    finish_fast,
    prepare_fast,
    select_fast,
    select_lean,
    verify_prepared,
)
from engine.wkd.sources import CertBlob, CertRun
from engine.wkd.validate import normalize_address

__all__ = [
    "METHODS",
    "BuildOptions",
    "CertResult",
    "Packed",
    "Record",
    "select_batch",
    "select_cert",
    "select_one",
    "select_packed",
    "select_work",
]

METHODS = ("advanced", "direct", "both")
OTHER_DOMAIN = "other domain"


@dataclass(frozen=True)
class BuildOptions:
    """What to publish: ``domains`` (None: every domain found), expired / revoked policy, the clock;
    ``root``/``method``: the staging tree the workers write into (None: records carry their bytes);
    ``lean``: use the lean path where it applies (False: always the reference path)."""

    domains: frozenset[str] | None = None
    include_expired: bool = False
    include_revoked: bool = False
    now: int | None = None
    root: str | None = None
    method: str = "advanced"
    lean: bool = True


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
    size: int = 0
    sha256: str = ""
    written: bool = False  # the worker wrote the file; ``data`` is then empty


@dataclass
class CertResult:
    """What a worker made of one certificate blob."""

    source: str
    offset: int
    fingerprint: str = ""
    records: list[Record] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (reason, address or User ID)
    seconds_parse: float = 0.0
    seconds_verify: float = 0.0
    seconds_select: float = 0.0
    seconds_write: float = 0.0


def _revocation_block(cert: Cert, entry: UserIDEntry) -> bytes:
    """Primary key, its revocations, the User ID with its self-signatures and revocations: no subkeys."""
    out = [cert.primary.serialize(), *(s.serialize() for s in cert.revocations), entry.uid.serialize()]
    newest = max(entry.self_signatures, key=lambda s: s.created, default=None)
    if newest is not None:
        out.append(newest.serialize())
    out += [s.serialize() for s in entry.revocations]
    return b"".join(out)


def _uid_state(entry: UserIDEntry, at: int) -> str | None:
    """None when the User ID is usable at ``at``; else why not."""
    if not entry.self_signatures:
        return "no valid self-signature"
    sig = entry.self_signature(at)
    if sig is None:
        return "self-signature expired or not yet valid"
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
        problem = key_problem or _uid_state(entry, at)
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
            data, status = cert.minimal_for(entry, at), "expired" if expired else "valid"
        result.records.append(
            Record(domain, hashed, local, address, fpr, cert.primary.created, data, status, len(data))
        )


def _lean(
    opts: BuildOptions,
    blob: CertBlob,
    now: int,
    skipped: list[tuple[str, str]],
    prepared: Prepared | bool | None = True,
) -> tuple[list[tuple], str, float, float, float] | None:
    """The lean path: ``(records as tuples (domain, hash, local, address, fingerprint, created, data,
    status), fingerprint, seconds parse, verify, select)``, the reasons for the addresses left out
    appended to ``skipped``; None (nothing appended) when the certificate is unusual. The common shape
    goes through :func:`select_fast` (one kernel call), the others through :class:`LeanCert`.
    ``prepared``: True to run :func:`select_fast` here, else what :func:`prepare_fast` made of the blob
    (its Ed25519 checks verified since: :func:`verify_prepared`; None: not of the common shape)."""
    t0 = time.perf_counter()
    before = 0.0  # seconds spent on the blob before this call
    try:
        if prepared is True:
            got = select_fast(blob.data, opts.domains, now)
        elif isinstance(prepared, Prepared):
            before = prepared.parse + prepared.spent
            got = finish_fast(prepared, opts.domains, now)
        else:
            got = None
        if got is None:
            cert = LeanCert(blob.data)
            parse = time.perf_counter() - t0
            left: list[tuple[str, str]] = []
            chosen = select_lean(cert, opts.domains, opts.include_expired, opts.include_revoked, now, left)
            got = chosen, cert.primary.fingerprint_hex, cert.created, left, parse, cert.seconds_verify
    except (Unusual, PgpBulkError, ValueError, IndexError):
        return None
    chosen, fpr, created, left, parse, verify = got
    skipped += left
    rows = []
    if chosen:
        hashes = wkd_hashes([c[0] for c in chosen])  # :class:`Chosen` or its fields as a tuple
        for (local, domain, address, data, status), hashed in zip(chosen, hashes, strict=True):
            rows.append((domain, hashed, local, address, fpr, created, data, status))
    return rows, fpr, parse, verify, time.perf_counter() - t0 + before - parse - verify


def _prepare(opts: BuildOptions, blobs: list[CertBlob], now: int) -> list[Prepared | bool | None]:
    """:func:`prepare_fast` of each blob (False: the lean path is off, or the blob is unusual), then the
    Ed25519 checks of them all verified in one call (:func:`verify_prepared`)."""
    if not opts.lean:
        return [False] * len(blobs)
    out: list[Prepared | bool | None] = []
    for blob in blobs:
        try:
            out.append(prepare_fast(blob.data, opts.domains, now))
        except (Unusual, PgpBulkError, ValueError, IndexError):
            out.append(False)  # as :func:`_lean` when :func:`select_fast` raises
    verify_prepared([p for p in out if isinstance(p, Prepared)])
    return out


def _select_lean(opts: BuildOptions, blob: CertBlob, result: CertResult, now: int) -> bool:
    """The lean path; False (nothing recorded) when the certificate is unusual."""
    got = _lean(opts, blob, now, result.skipped)
    if got is None:
        return False
    rows, result.fingerprint, parse, verify, select = got
    for domain, hashed, local, address, fpr, created, data, status in rows:
        result.records.append(Record(domain, hashed, local, address, fpr, created, data, status, len(data)))
    result.seconds_parse += parse
    result.seconds_verify += verify
    result.seconds_select += select
    return True


def select_one(opts: BuildOptions, blob: CertBlob) -> CertResult:
    """Parse, verify and select one certificate blob; never raises for bad input (it is reported)."""
    result = CertResult(blob.source, blob.offset)
    result.skipped += [("oversized packet dropped", note) for note in blob.notes]
    now = int(time.time()) if opts.now is None else opts.now
    if opts.lean and _select_lean(opts, blob, result, now):
        return result
    t0 = time.perf_counter()
    try:
        certs = read_certs(blob.data, blob.source)
    except (PgpBulkError, ValueError) as exc:
        result.skipped.append(("unreadable key", f"{blob.source} byte {blob.offset}: {exc}"))
        return result
    t1 = time.perf_counter()
    result.seconds_verify = t1 - t0  # reading a Cert parses and verifies in one go
    for cert in certs:
        result.fingerprint = cert.fingerprint_hex
        try:
            select_cert(cert, replace(opts, now=now), result)
        except (PgpBulkError, ValueError) as exc:
            result.skipped.append(("unusable key", f"{cert.fingerprint_hex}: {exc}"))
    result.seconds_select = time.perf_counter() - t1
    return result


def select_batch(opts: BuildOptions, blobs: list[CertBlob]) -> list[CertResult]:
    """Worker entry point: :func:`select_one` over a batch (``functools.partial(select_batch, opts)``);
    with ``opts.root`` the records' files are written here too."""
    results = [select_one(opts, blob) for blob in blobs]
    if opts.root is not None:
        from engine.wkd.tree import write_records

        for res in results:
            if res.records:
                t = time.perf_counter()
                res.records = write_records(opts.root, opts.method, res.records)
                res.seconds_write += time.perf_counter() - t
    return results


@dataclass(slots=True)
class Packed:
    """A whole batch's results in one object (:func:`select_packed`): the parent's index rows in input
    order, ``(domain, hash, manifest entry of a file of this one key as JSON text, None, None)``
    (:func:`engine.wkd.tree.entry_text`), where an unwritten record (its address's file was taken by
    another key) carries its bytes in place of the first None; ``unwritten``: the indexes of those rows;
    ``skipped``: (reason, what)."""

    rows: list[tuple] = field(default_factory=list)
    unwritten: list[int] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds_parse: float = 0.0
    seconds_verify: float = 0.0
    seconds_select: float = 0.0
    seconds_write: float = 0.0


def select_packed(opts: BuildOptions, blobs: list[CertBlob]) -> list[Packed | None]:
    """A batch of a build writing into ``opts.root`` (:func:`select_work` runs it in the worker):
    :func:`select_one` over the batch, files written here, and everything the parent needs packed into
    the first slot (the other slots None, so the result list keeps the batch's length): one object to
    pickle per batch instead of one per record.

    The files are written once the whole batch is selected, through one open descriptor per domain:
    file creations interleaved with the signature checks made the checks measurably slower."""
    from engine.wkd.tree import close_dirs

    assert opts.root is not None
    out = Packed()
    now = int(time.time()) if opts.now is None else opts.now
    reference = replace(opts, lean=False, now=now)
    dirs: dict[str, int] = {}  # the open ``hu`` folders, one open per batch and domain
    try:
        _packed(opts, blobs, now, reference, out, dirs)
    finally:
        close_dirs(dirs)
    return [out, *([None] * (len(blobs) - 1))]


def select_work(opts: BuildOptions, work: list[CertBlob | CertRun]) -> Packed:
    """Worker entry point of a build writing into ``opts.root``, one pool item per task: the
    certificates of ``work`` (runs expanded) through :func:`select_packed`, as one :class:`Packed`.
    Should that raise, each certificate is retried alone, as the pool would retry a batch's items:
    a certificate that still raises becomes a ``("worker error", "Type: message")`` skip in its place."""
    blobs: list[CertBlob] = []
    for item in work:
        if isinstance(item, CertRun):
            blobs += item.blobs()
        else:
            blobs.append(item)
    try:
        packed = select_packed(opts, blobs)[0]
    except Exception:
        return _one_by_one(opts, blobs)
    assert packed is not None
    return packed


def _one_by_one(opts: BuildOptions, blobs: list[CertBlob]) -> Packed:
    """:func:`select_packed` of each certificate alone, joined into one :class:`Packed` in input order."""
    out = Packed()
    for blob in blobs:
        try:
            part = select_packed(opts, [blob])[0]
        except Exception as exc:
            out.skipped.append(("worker error", f"{type(exc).__name__}: {exc}"))
            continue
        assert part is not None
        out.unwritten += [len(out.rows) + i for i in part.unwritten]
        out.rows += part.rows
        out.domains |= part.domains
        out.skipped += part.skipped
        out.seconds_parse += part.seconds_parse
        out.seconds_verify += part.seconds_verify
        out.seconds_select += part.seconds_select
        out.seconds_write += part.seconds_write
    return out


def _packed(
    opts: BuildOptions,
    blobs: list[CertBlob],
    now: int,
    reference: BuildOptions,
    out: Packed,
    dirs: dict[str, int],
) -> None:
    """The body of :func:`select_packed`: results into ``out``, files through the folders of ``dirs``."""
    from engine.wkd.tree import write_rows

    assert opts.root is not None
    todo: list[tuple] = []  # the batch's rows, written after the selection of all its keys
    for blob, prepared in zip(blobs, _prepare(opts, blobs, now), strict=True):
        got = None
        if prepared is not False:
            skipped = [("oversized packet dropped", note) for note in blob.notes]
            got = _lean(opts, blob, now, skipped, prepared)
        if got is not None:
            rows = got[0]
            out.skipped += skipped
            out.seconds_parse += got[2]
            out.seconds_verify += got[3]
            out.seconds_select += got[4]
        else:
            res = select_one(reference, blob)
            rows = [(r.domain, r.hash, r.local, r.address, r.fingerprint, r.created, r.data, r.status)
                    for r in res.records]  # fmt: skip
            out.skipped += res.skipped
            out.seconds_parse += res.seconds_parse
            out.seconds_verify += res.seconds_verify
            out.seconds_select += res.seconds_select
        todo += rows
    if todo:
        t = time.perf_counter()
        write_rows(opts.root, opts.method, todo, out, dirs)
        out.seconds_write += time.perf_counter() - t
