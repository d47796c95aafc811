"""Archive jobs: stream a source through classify → wrap/unwrap → sink, with a report and verification.

``process_one`` is the whole per-message step: pure (no I/O), picklable arguments (module-level
payload functions or ``functools.partial``), so the scheduler can run it in a process pool unchanged.
Every message of the source reaches the sink exactly once and in order; one that cannot be processed
(malformed, empty, truncated, or the payload function failed on it) is written unchanged and reported.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import InvalidArgument
from engine.mail.classify import MailClass, classify
from engine.mail.item import MailItem
from engine.mail.pgpmime import NotWrappable, unwrap, wrap
from engine.mail.report import Report, Result
from engine.mail.source import Sink, open_sink, open_source, sink_format

Payload = Callable[[bytes], bytes]
MODES = ("encrypt", "decrypt")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encrypt_one(item: MailItem, cls: MailClass, payload: Payload, keep_subject: bool) -> Result:
    digest = _sha(item.raw)
    if item.truncated:
        return Result(item.index, cls.value, "copied", item.raw, digest, "truncated last message")
    if cls.encrypted:
        return Result(item.index, cls.value, "passed", item.raw, digest)
    if cls in (MailClass.EMPTY, MailClass.MALFORMED):
        return Result(item.index, cls.value, "copied", item.raw, digest, f"{cls.value} message")
    try:
        out = wrap(item.raw, payload, keep_subject=keep_subject)
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
    except Exception as e:
        return Result(item.index, cls.value, "copied", item.raw, _sha(item.raw), f"decryption failed: {e!r}")
    return Result(item.index, cls.value, "decrypted", out, _sha(out))


def process_one(item: MailItem, mode: str, payload: Payload, keep_subject: bool = False) -> Result:
    """Encrypt or decrypt one message; never raises for a problem of the message itself."""
    cls = classify(item.raw)
    if mode == "encrypt":
        return _encrypt_one(item, cls, payload, keep_subject)
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


__all__ = ["Report", "Result", "decrypt_archive", "encrypt_archive", "process_one"]
