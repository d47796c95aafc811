"""Archive jobs: stream a source through classify → wrap/unwrap → sink, with a report and verification.

:func:`run_job` is the command's entry point: the process pool, the journal and resume, in-process crypto
(:mod:`engine.mail.crypto`). :func:`encrypt_archive` / :func:`decrypt_archive` are the sequential form
with injected payload functions (any peer, such as gpg, can be plugged in).

``process_one`` is the whole per-message step: pure (no I/O), picklable arguments (module-level
payload functions or ``functools.partial``), so the scheduler can run it in a process pool unchanged.
Every message of the source reaches the sink exactly once and in order; one that cannot be processed
(malformed, empty, truncated, or the payload function failed on it) is written unchanged and reported.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from engine import _native
from engine.armor import ArmorWarning
from engine.errors import InvalidArgument, NoMatchingKey
from engine.mail import WORKER_MODULES
from engine.mail.cardprime import card_refs
from engine.mail.classify import ENCRYPTED, MailClass, classify
from engine.mail.crypto import (
    STOP_ERRORS,
    STOP_KINDS,
    CryptoConfig,
    broker_report,
    card_session,
    check_config,
    current,
    init_pool_worker,
)
from engine.mail.headers import Head, parse_head
from engine.mail.item import MailItem
from engine.mail.mbox import MboxRef, entry, load_refs, scan_mbox
from engine.mail.pgpmime import NotWrappable, Wrapping, assemble, assemble_parts, prepare, unwrap, wrap
from engine.mail.report import Report, Result
from engine.mail.sinks import ArchiveSink, Processed, pack_shard_batch, partial_of, read_records, to_shard
from engine.mail.source import Sink, open_sink, open_source, sink_format
from engine.scheduler import Failed, Journal, Progress, RunReport, run_journaled
from engine.scheduler.pool import prestart

Payload = Callable[[bytes], bytes]
MODES = ("encrypt", "decrypt")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha_many(datas: list[bytes]) -> list[str]:
    """:func:`_sha` of each of ``datas``, several at once (SHA-NI lanes in the native kernel)."""
    return [digest.hex() for digest in _native.kernel("pgpcrypto").sha256_many(datas)]


#: What ``encrypt`` does not wrap: encrypted already, or nothing to wrap (a tuple of the members, not
#: ``cls.encrypted`` and ``MailClass.X`` lookups: a microsecond a message).
_NOT_WRAPPED = (*ENCRYPTED, MailClass.EMPTY, MailClass.MALFORMED)


def _wrappable(item: MailItem, cls: MailClass) -> bool:
    """Whether ``encrypt`` wraps this message (else it is passed or copied unchanged)."""
    return not item.truncated and cls not in _NOT_WRAPPED


def _encrypt_one(
    item: MailItem,
    cls: MailClass,
    payload: Payload,
    keep_subject: bool,
    head: Head | None = None,
    sealed: tuple[Wrapping, bytes] | None = None,
) -> Result:
    """``sealed``: the message's :func:`prepare` and its entity already encrypted (a batch did it)."""
    digest = _sha(item.raw)
    if item.truncated:
        return Result(item.index, cls.value, "copied", item.raw, digest, "truncated last message")
    if cls.encrypted:
        return Result(item.index, cls.value, "passed", item.raw, digest)
    if cls in (MailClass.EMPTY, MailClass.MALFORMED):
        return Result(item.index, cls.value, "copied", item.raw, digest, f"{cls.value} message")
    try:
        if sealed is not None:
            out = assemble(*sealed, digest)
        else:
            out = wrap(item.raw, payload, keep_subject=keep_subject, head=head, sha256=digest)
    except NotWrappable as e:
        return Result(item.index, cls.value, "copied", item.raw, digest, e.reason)
    except Exception as e:  # the payload function's failure concerns this message only
        return Result(item.index, cls.value, "copied", item.raw, digest, f"encryption failed: {e!r}")
    return Result(item.index, cls.value, "encrypted", out, digest)


def _decrypt_one(item: MailItem, cls: MailClass, payload: Payload) -> Result:
    if cls is not MailClass.PGP_MIME:
        return Result(item.index, cls.value, "passed", item.raw, _sha(item.raw))
    try:
        out = unwrap(item.raw, payload)
    except NotWrappable as e:
        return Result(item.index, cls.value, "copied", item.raw, _sha(item.raw), e.reason)
    except NoMatchingKey:  # for someone else: not an error of ours, but reported
        return Result(
            item.index, cls.value, "not-ours", item.raw, _sha(item.raw), "not encrypted to any given key"
        )
    except STOP_ERRORS:  # the key provider cannot go on (PIN, card gone): the run stops
        raise
    except Exception as e:
        return Result(item.index, cls.value, "copied", item.raw, _sha(item.raw), f"decryption failed: {e!r}")
    return Result(item.index, cls.value, "decrypted", out, _sha(out))


def process_one(item: MailItem, mode: str, payload: Payload, keep_subject: bool = False) -> Result:
    """Encrypt or decrypt one message; never raises for a problem of the message itself."""
    head = parse_head(item.raw)
    cls = classify(item.raw, head)
    if mode == "encrypt":
        return _encrypt_one(item, cls, payload, keep_subject, head)
    if mode == "decrypt":
        return _decrypt_one(item, cls, payload)
    raise InvalidArgument(f"unknown mode {mode!r}; expected one of {MODES}")


def _verify(report: Report, sink: Sink, decrypt_payload: Payload | None) -> dict[str, object]:
    """Re-read the partial output; each message's plaintext must hash as recorded."""
    mismatches: list[int] = []
    count = 0
    for item in open_source(sink.partial, "mboxrd" if sink.fmt == "mbox" else sink.fmt):
        count += 1
        if item.index >= report.messages:
            break
        data = item.raw
        if decrypt_payload is not None and report.outcome_of(item.index) == "encrypted":
            try:
                data = unwrap(data, decrypt_payload)
            except Exception:
                mismatches.append(item.index)
                continue
        if _sha(data) != report.sha256[item.index]:
            mismatches.append(item.index)
    ok = count == report.messages and not mismatches
    return {"checked": count, "expected": report.messages, "mismatches": mismatches, "ok": ok}


def _run(
    mode: str,
    src: str | Path,
    dst: str | Path,
    payload: Payload,
    *,
    fmt: str | None,
    out_fmt: str | None,
    keep_subject: bool,
    report: str | Path | None,
    verify: bool,
    verify_with: Payload | None,
    overwrite: bool,
) -> Report:
    started = time.monotonic()
    source = open_source(src, fmt)
    if Path(dst).resolve() == Path(src).resolve():
        raise InvalidArgument("destination must differ from the source")
    fmt_out = sink_format(out_fmt or source.fmt)
    rep = Report(mode, str(src), str(dst), source.fmt, fmt_out)
    sink = open_sink(dst, fmt_out, overwrite=overwrite)
    try:
        for item in source:
            result = process_one(item, mode, payload, keep_subject)
            sink.write(item.with_raw(result.raw))
            rep.add(item, result)
        sink.flush()
        if verify:
            rep.verify = _verify(rep, sink, verify_with)
        if rep.verify is None or rep.verify["ok"]:
            sink.commit()
            rep.committed = True
        else:
            sink.abort()
    except BaseException:
        sink.abort()
        raise
    finally:
        rep.seconds = time.monotonic() - started
    if report is not None:
        rep.write(report)
    return rep


def encrypt_archive(
    src: str | Path,
    dst: str | Path,
    encrypt_payload: Payload,
    *,
    fmt: str | None = None,
    out_fmt: str | None = None,
    keep_subject: bool = False,
    report: str | Path | None = None,
    verify_with: Payload | None = None,
    overwrite: bool = False,
) -> Report:
    """Encrypt every plain message of ``src`` into PGP/MIME at ``dst``; already encrypted ones pass.

    With ``verify_with`` (a decrypt function) the output is decrypted and compared with the source's
    hashes before it is renamed into place; on a mismatch nothing is committed (``report.ok`` False).
    """
    return _run(
        "encrypt", src, dst, encrypt_payload, fmt=fmt, out_fmt=out_fmt, keep_subject=keep_subject,
        report=report, verify=verify_with is not None, verify_with=verify_with, overwrite=overwrite,
    )  # fmt: skip


def decrypt_archive(
    src: str | Path,
    dst: str | Path,
    decrypt_payload: Payload,
    *,
    fmt: str | None = None,
    out_fmt: str | None = None,
    report: str | Path | None = None,
    verify: bool = False,
    overwrite: bool = False,
) -> Report:
    """Decrypt every PGP/MIME message of ``src`` at ``dst`` (ours back to their original bytes).

    ``verify`` re-reads the output before committing and checks each message's hash.
    """
    return _run(
        "decrypt", src, dst, decrypt_payload, fmt=fmt, out_fmt=out_fmt, keep_subject=False,
        report=report, verify=verify, verify_with=None, overwrite=overwrite,
    )  # fmt: skip


# --- journaled runs on the process pool -----------------------------------------------------------

BATCH_BYTES = 8 << 20
#: Messages per task (fewer once BATCH_BYTES are reached). Each batch costs the parent some 1.3 ms of CPU
#: (task and result hand-over, one commit: three fsyncs) and a worker its own share: on the 20,000-message
#: bench archive 256 spends about 0.1 s less in the parent than 128 (and no more in the workers), while a
#: batch stays some 50 ms of a worker's time (the workers still ended within some 10 ms of each other).
BATCH_SIZE = 256
#: With card or token keys the card is the bottleneck: smaller batches keep a Ctrl-C (which lets the
#: batches in flight finish, each waiting on the card) and the journal's steps short.
CARD_BATCH_SIZE = 64
#: Batches in flight per worker when neither tasks nor results carry messages (an mbox read by the workers
#: into shard files: refs out, records back): results are delivered in input order, so a batch that
#: finished early holds its slot until every earlier one is delivered; at 2 a worker often ran dry
#: behind one slow batch, 4 keeps it fed. Other runs keep the pool's default (2: their memory; card
#: runs: a Ctrl-C waits for the batches in flight, and those wait on the card).
SHARD_DEPTH = 4
CHECKPOINT_SECONDS = 0.0  # journal every batch (issue 6); a positive value commits at most that often
ERRORS = ("copied",)


@dataclass(frozen=True)
class JobOptions:
    """What shapes each message's output (picklable: it travels with every batch)."""

    mode: str  # encrypt, decrypt or reencrypt
    keep_subject: bool = False
    verify: bool = False
    reencrypt_mode: str = "auto"  # rewrap, full or auto
    encrypt_plain: bool = False


def encrypt_checked(item: MailItem, cls: MailClass, opts: JobOptions, head: Head | None = None) -> Result:
    """Encrypt, then (with ``verify``) decrypt the result in memory with its session key and compare."""
    st = current()
    payload = st.encrypt_checkable if opts.verify else st.encrypt
    result = _encrypt_one(item, cls, payload, opts.keep_subject, head)
    if opts.verify and result.outcome == "encrypted":
        return _self_checked(item, cls, result, st.open_with_last_key)
    return result


def work_item(opts: JobOptions, item: MailItem, out_fmt: str = "") -> Processed:
    """Worker side of a journaled run: one message in, its output and outcome back; never raises.

    ``out_fmt="mbox"``: the output is built here as the mbox sink appends it (:meth:`Processed.for_mbox`),
    whose hash (in the record) serves the re-read check, so the message alone is not hashed."""
    with warnings.catch_warnings():  # a bad CRC in some message's armor is that message's business
        warnings.simplefilter("ignore", ArmorWarning)
        return _work_item(opts, item, out_fmt)


def _work_item(opts: JobOptions, item: MailItem, out_fmt: str) -> Processed:
    """:func:`work_item` with ``ArmorWarning`` already ignored (by the caller, once per batch)."""
    try:
        result = _work(opts, item)
    except STOP_ERRORS:
        raise
    except Exception as e:  # a bug or a provider failure: keep the message, say why
        result = Result(item.index, "malformed", "copied", item.raw, _sha(item.raw), f"error: {e!r}")
    return _processed(item, result, out_fmt)


def _encrypt_batch(
    opts: JobOptions, items: Sequence[MailItem], out_fmt: str, pieces: bool = False
) -> list[Processed]:
    """``encrypt`` of a batch: every wrappable message's entity is built first, then all of them are
    encrypted in one call (:meth:`WorkerState.encrypt_many`, which runs several messages' AES-CFB side
    by side), then each message is assembled (for an mbox sink straight into its mbox entry:
    :meth:`Processed.sealed`; ``pieces``: left in pieces for :func:`to_shard`). With ``verify`` each
    whole result is then checked as :func:`encrypt_checked` does (``encrypt_many_checkable``). Same
    output as one by one; a message this path cannot take (parse error, not wrappable, the batch call
    failed) goes the one-message way, which reports it."""
    plans: list[tuple[Head, MailClass, Wrapping | None] | None] = []
    hashed: list[int] = []  # the wrapped messages, for an mbox sink: their digests are taken together
    for i, item in enumerate(items):
        try:
            head = parse_head(item.raw)
            cls = classify(item.raw, head)
            wrapping = (
                prepare(item.raw, keep_subject=opts.keep_subject, head=head)
                if _wrappable(item, cls)
                else None
            )
        except Exception:  # NotWrappable or worse: the one-message path reports it
            plans.append(None)
            continue
        if wrapping is not None and out_fmt == "mbox" and not opts.verify:
            hashed.append(i)
        plans.append((head, cls, wrapping))
    digests = dict(zip(hashed, _sha_many([items[i].raw for i in hashed]), strict=True))
    todo = {i: plan[2] for i, plan in enumerate(plans) if plan is not None and plan[2] is not None}
    st = current()
    openers: dict[int, Callable[[bytes], bytes]] = {}
    try:
        entities = [w.entity for w in todo.values()]
        if opts.verify:
            checkable = dict(zip(todo, st.encrypt_many_checkable(entities), strict=True))
            armored = {i: a for i, (a, _) in checkable.items()}
            openers = {i: o for i, (_, o) in checkable.items()}
        else:
            armored = dict(zip(todo, st.encrypt_many(entities), strict=True))
    except Exception:  # e.g. one entity the cipher refuses: let each message fail (or not) on its own
        armored = {}
    out = []
    for i, (item, plan) in enumerate(zip(items, plans, strict=True)):
        if plan is None or (plan[2] is not None and i not in armored):
            out.append(_work_item(opts, item, out_fmt))
            continue
        head, cls, wrapping = plan
        if i in digests:  # wrapped, for an mbox sink: assembled into its entry
            try:
                parts = assemble_parts(wrapping, armored[i], digests[i])  # type: ignore[arg-type]
            except Exception:  # the one-message way below reports it
                parts = None
            if parts is not None:
                out.append(
                    Processed.sealed(item.bare(), parts, cls.value, digests[i], len(item.raw), not pieces)
                )
                continue
        sealed = (wrapping, armored[i]) if wrapping is not None else None
        result = _encrypt_one(item, cls, st.encrypt, opts.keep_subject, head, sealed)
        if i in openers and result.outcome == "encrypted":
            result = _self_checked(item, cls, result, openers[i])
        out.append(_processed(item, result, out_fmt))
    return out


def _self_checked(item: MailItem, cls: MailClass, result: Result, opener: Callable[[bytes], bytes]) -> Result:
    """``result`` when its message decrypts (with ``opener``: its own session key) back to the original,
    else the original copied unchanged with the reason "self-check failed"."""
    try:
        ok = _sha(unwrap(result.raw, opener)) == result.sha256
    except Exception:
        ok = False
    return result if ok else Result(item.index, cls.value, "copied", item.raw, result.sha256, "self-check failed")


def _processed(item: MailItem, result: Result, out_fmt: str) -> Processed:
    """What goes back to the parent for ``item``'s ``result`` (mbox: built as the sink appends it)."""
    if out_fmt == "mbox":  # the hot path: no intermediate objects, no second hash of the message
        return Processed.mbox(item.bare(), result.raw, result.mail_class, result.outcome, result.sha256,
                              len(item.raw), result.reason)  # fmt: skip
    return Processed(
        item.with_raw(result.raw), result.mail_class, result.outcome, result.sha256, len(item.raw), item.source, item.offset,
        result.reason, _sha(result.raw),
    )  # fmt: skip


def _size(item: MailItem | MboxRef) -> int:
    return len(item.raw) if isinstance(item, MailItem) else item.length


def work_batch(
    opts: JobOptions, refs: list[MailItem | MboxRef], out_fmt: str = "", shards: str = ""
) -> list[Processed]:
    """Worker side, one batch: read the messages (an :class:`MboxRef` is read here, not in the parent),
    queue the card operations of all of them first (card keys), then process them one by one. A wrong
    PIN or a lost card raises (the run stops, see :func:`_stop_on`). With ``shards`` (the destination;
    mbox output on a pool) the output goes into a shard file beside it (:func:`to_shard`), not back
    through the pipe."""
    items = load_refs(refs)
    current().prefetch([item.raw for item in items])
    with warnings.catch_warnings():  # as in work_item, once for the batch
        warnings.simplefilter("ignore", ArmorWarning)
        if opts.mode == "encrypt":
            out = _encrypt_batch(opts, items, out_fmt, pieces=bool(shards))
        else:
            out = [_work_item(opts, item, out_fmt) for item in items]
    return to_shard(shards, out) if shards and out_fmt == "mbox" else out


def _stop_on(result: object) -> tuple[str, str] | None:
    """A result that ends the run: the key provider failed (one of ``STOP_ERRORS``, named by the pool)."""
    if isinstance(result, Failed) and result.kind in STOP_KINDS:
        return result.reason.partition(": ")[2] or result.reason, result.kind
    return None


def _work(opts: JobOptions, item: MailItem) -> Result:
    head = parse_head(item.raw)
    cls = classify(item.raw, head)
    if opts.mode == "encrypt":
        return encrypt_checked(item, cls, opts, head)
    if opts.mode == "decrypt":
        return _decrypt_one(item, cls, current().decrypt)
    from engine.mail.reencrypt import reencrypt_one

    return reencrypt_one(item, cls, opts, current())


def _identity(path: Path) -> dict[str, object]:
    """What identifies the source for a resume: size and mtime (of ``cur``/``new`` for a Maildir)."""
    parts = [path / d for d in ("cur", "new")] if (path / "cur").is_dir() else [path]
    stats = [p.stat() for p in parts]
    return {"path": str(path.resolve()), "size": sum(s.st_size for s in stats),
            "mtime_ns": [s.st_mtime_ns for s in stats]}  # fmt: skip


def _stored_mbox_hashes(path: Path) -> Iterator[tuple[MboxRef, str]]:
    """Each message of an mbox file as a reader splits it (:func:`scan_mbox`) with the segment digest
    (hex, as a record's ``wsha``) of its whole stored entry: from its separator line to the next one (or
    the end of the file), read in one ``pread`` each (memory bounded by the largest message)."""
    from engine.scheduler.sink import segment_hash

    refs = scan_mbox(path, "mboxrd")
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        current_ref = next(refs, None)
        while current_ref is not None:
            following = next(refs, None)
            end = size if following is None else following.offset
            yield current_ref, segment_hash.digest(os.pread(fd, end - current_ref.offset, current_ref.offset)).hex()
            current_ref = following
    finally:
        os.close(fd)


def verify_output(path: Path, fmt: str, records: list[dict[str, object]]) -> dict[str, object]:
    """Re-read a written archive: every message once, in order, with the bytes the workers produced
    (``out_sha256``, or for an mbox record with ``wsha`` the segment digest of the message's entry as
    stored: the bytes between the boundaries an independent scan of the file finds)."""
    from engine.scheduler.sink import segment_hash

    by_name = {r["name"]: r for r in records} if fmt != "mbox" else {}
    mismatches: list[int] = []
    count = 0
    if fmt == "mbox" and all(r.get("wsha") for r in records):
        for ref, stored in _stored_mbox_hashes(path):
            if ref.index >= len(records) or stored != records[ref.index]["wsha"]:
                mismatches.append(ref.index)
            count += 1
        return _verdict(records, count, mismatches)
    for item in open_source(path, "mboxrd" if fmt == "mbox" else fmt):
        rec = records[item.index] if fmt == "mbox" and item.index < len(records) else by_name.get(item.name)
        if rec is None or (
            segment_hash.digest(entry(item.raw, item.separator_line)).hex() != rec["wsha"]
            if rec.get("wsha")
            else _sha(item.raw) != rec["out_sha256"]
        ):
            mismatches.append(item.index)
        count += 1
    return _verdict(records, count, mismatches)


def _verdict(records: list[dict[str, object]], count: int, mismatches: list[int]) -> dict[str, object]:
    self_check = [int(r["i"]) for r in records if r["reason"] == "self-check failed"]  # type: ignore[call-overload]
    ok = count == len(records) and not mismatches and not self_check
    return {"checked": count, "expected": len(records), "mismatches": mismatches,
            "self_check_failures": self_check, "ok": ok}  # fmt: skip


def _prepare(src: Path, dst: Path, journal: Path, resume: bool, overwrite: bool) -> None:
    if dst.resolve() == src.resolve() or dst.resolve().is_relative_to(src.resolve()):
        raise InvalidArgument("the destination must lie outside the source")
    if resume:
        if not journal.exists():
            raise InvalidArgument(f"nothing to resume: {journal} does not exist")
        if dst.exists() and not partial_of(dst).exists():
            raise InvalidArgument(f"{dst} exists and is complete; nothing to resume")
        return
    if dst.exists() and not overwrite:
        raise InvalidArgument(f"{dst} exists (pass --force to replace it)")
    if journal.exists() and not overwrite:
        raise InvalidArgument(
            f"{journal}: an interrupted run; pass --resume to finish it or --force to start over"
        )


def run_job(
    src: str | Path,
    dst: str | Path,
    opts: JobOptions,
    crypto: CryptoConfig,
    *,
    fmt: str | None = None,
    out_fmt: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    report: str | Path | None = None,
    progress: Progress | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> Report:
    """Run ``opts.mode`` over the archive ``src`` into ``dst`` on the process pool, journaled.

    Results are written in input order into ``DST.partial``; ``DST.journal`` records progress so that
    ``resume=True`` after a crash or kill finishes the same output without redoing (or re-encrypting)
    what is written. With ``opts.verify`` the output is re-read before it is renamed into place.
    ``batch_size``: messages per task (default :data:`BATCH_SIZE`; :data:`CARD_BATCH_SIZE` with card or
    token keys). The journal is committed (output, records and journal fsynced) at most every
    ``checkpoint_seconds`` (0: after every batch) and at the end.
    Raises :class:`~engine.scheduler.Interrupted` on Ctrl-C (resumable).
    """
    if opts.mode not in (*MODES, "reencrypt"):
        raise InvalidArgument(f"unknown mode {opts.mode!r}")
    src, dst = Path(src), Path(dst)
    source = open_source(src, fmt)
    journal_path = dst.with_name(dst.name + ".journal")
    _prepare(src, dst, journal_path, resume, overwrite)
    fmt_out = sink_format(out_fmt or source.fmt)
    params = {"opts": {**asdict(opts), "verify": None}, "src": _identity(src), "fmt": source.fmt, "out": fmt_out,
              "recipients": [_sha(c) for c in crypto.recipients], "keys": crypto.keys and crypto.keys.specs}  # fmt: skip
    run = RunReport()
    n = (os.cpu_count() or 1) if workers is None else workers
    pooled = n > 1
    shards = str(dst) if pooled and fmt_out == "mbox" else ""  # workers hand their output over in files
    with card_session(crypto) as (crypto, broker):  # card and token keys: one broker for all workers
        # A card starts on the first message at once; the pool's fork server then loads (on the other
        # core) while this process checks the keys and opens the sink during that first operation.
        refs = card_refs(source, crypto, early=not resume)
        if not callable(refs):  # no card to prime: the scan from the run's start cuts its own batches
            refs = source.refs
        deep = bool(shards) and source.fmt not in ("maildir", "emldir") and broker is None
        batch_size = batch_size or (BATCH_SIZE if broker is None else CARD_BATCH_SIZE)
        prestart(workers, init_pool_worker, WORKER_MODULES)
        check_config(crypto)
        rep = Report(opts.mode, str(src), str(dst), source.fmt, fmt_out)
        # counts as it writes; with --verify the output stays in the page cache for the re-read
        sink = ArchiveSink(dst, fmt_out, overwrite=overwrite, report=rep, direct=not opts.verify)
        try:
            run_journaled(
                refs, partial(work_batch, opts, out_fmt=fmt_out, shards=shards), sink, Journal(journal_path), params, resume=resume,
                progress=progress, report=run, outcome=lambda p: p.outcome, workers=workers,
                batch_size=batch_size, batch_bytes=BATCH_BYTES, item_size=_size, max_in_flight=SHARD_DEPTH * n if deep else None,
                initializer=init_pool_worker, initargs=(crypto,), batched=True, stop_on=_stop_on,
                checkpoint_every=checkpoint_seconds, pack=pack_shard_batch if shards else None,
            )  # fmt: skip
        finally:
            sink.close()
            cards = broker_report(broker) if broker is not None else None
    rep.run, rep.broker = run.as_dict(), cards
    if opts.verify or not sink.counted:  # the records are read back only to verify, or when the
        records = list(read_records(sink.records))  # run was found finished (no rewind, nothing counted)
        if not sink.counted:
            for r in records:
                rep.count_record(r)
        if opts.verify:
            rep.verify = verify_output(sink.partial, fmt_out, records)
    if rep.verify is None or rep.verify["ok"]:
        sink.commit()
        rep.committed = True
    else:
        sink.abort()
    journal_path.unlink(missing_ok=True)
    rep.seconds = run.as_dict()["elapsed_s"]
    if report is not None:
        rep.write(report)
    return rep


__all__ = [
    "JobOptions",
    "Processed",
    "Report",
    "Result",
    "decrypt_archive",
    "encrypt_archive",
    "process_one",
    "run_job",
    "verify_output",
    "work_item",
]
