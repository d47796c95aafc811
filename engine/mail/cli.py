"""``pgpbulk encrypt | decrypt | reencrypt``: argument parsing only; the work is :func:`engine.mail.job.run_job`.

Exit codes: 0 every message processed; 1 some messages were carried over unchanged because of errors
(listed in ``--report``), a verification failed, a worker died, or a card was lost mid-run (resumable);
2 bad input or usage, a wrong PIN or passphrase included (one line; resumable when it stopped a run);
130 interrupted (Ctrl-C), with the hint to ``--resume``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PASSPHRASE_ENV = "PGPBULK_PASSPHRASE"
#: What a worker loads on its first message beyond the jobs' modules (PyNaCl's X25519 with its
#: ``sodium_init``, the native kernels): the fork server loads them once (some 6 ms), before it forks,
#: instead of each worker after it started (some 10 ms each). A name that does not import is skipped.
WORKER_WARM = ("nacl.bindings", "engine._armor_c", "engine._mailpass_c", "engine._pgpcrypto_c")


def _read_passphrase(args: argparse.Namespace, specs: list[str]) -> bytes | None:
    """From ``--passphrase-file`` (first line), ``$PGPBULK_PASSPHRASE``, or a prompt on a terminal."""
    from engine.errors import InvalidArgument
    from engine.mail.crypto import needs_passphrase

    if args.passphrase_file:
        try:
            with open(args.passphrase_file, "rb") as f:
                return f.readline().rstrip(b"\r\n")
        except OSError as exc:
            raise InvalidArgument(f"--passphrase-file {args.passphrase_file}: {exc.strerror}") from None
    if os.environ.get(PASSPHRASE_ENV) is not None:
        return os.environ[PASSPHRASE_ENV].encode()
    if sys.stdin.isatty() and needs_passphrase(specs, args.gnupghome):
        return getpass.getpass("Passphrase for the --key: ").encode()
    return None


def _keys(args: argparse.Namespace) -> Any:
    from engine.errors import InvalidArgument
    from engine.mail.crypto import KeyConfig

    certs = []
    for path in args.cert or []:
        try:
            with open(path, "rb") as f:
                certs.append(f.read())
        except OSError as exc:
            raise InvalidArgument(f"--cert {path}: {exc.strerror}") from None
    specs = list(args.key)
    return KeyConfig(tuple(specs), args.gnupghome, _read_passphrase(args, specs), tuple(certs))


def _recipients(args: argparse.Namespace) -> tuple[bytes, ...]:
    from engine.mail.recipients import RecipientOptions, resolve

    opts = RecipientOptions(args.gnupghome, args.cafile, args.wkd_connect)
    return tuple(resolve(args.recipient, opts))


def _summary(rep: Any) -> str:
    outcomes = ", ".join(f"{n} {o}" for o, n in sorted(rep.outcomes.items()))
    run = rep.run
    return (
        f"{rep.mode}: {rep.messages} messages ({outcomes}) -> {rep.destination}; this run: "
        f"{run.get('items', 0)} messages in {run.get('elapsed_s', 0):.2f} s, "
        f"{run.get('items_per_s', 0):.1f} messages/s, {run.get('mb_per_s', 0):.2f} MB/s"
    )


def _broker_line(broker: dict[str, Any]) -> str:
    cards = "; ".join(
        f"{c['name']}: {c['ops']} ops, {c['retries']} retries, {c['errors']} errors, "
        f"busy {c['busy_fraction']:.0%}{'' if c['alive'] else ' (out: ' + c['reason'] + ')'}"
        for c in broker["cards"]
    )
    return f"card broker: {cards}; queue high water {broker['queue_high_water']}"


def _run(args: argparse.Namespace, opts: Any, crypto: Any) -> int:
    from engine.keys.errors import BadPassphrase
    from engine.mail.job import run_job
    from engine.scheduler import Interrupted, Progress, Stopped, WorkerCrashed, configure_logging

    verbosity = -1 if args.quiet else args.verbose
    configure_logging(verbosity)
    progress = Progress(unit="message", quiet=args.quiet, interval=10.0)
    try:
        rep = run_job(
            args.src, args.output, opts, crypto, fmt=args.format, out_fmt=args.output_format,
            workers=args.workers, batch_size=args.batch_size, resume=args.resume, overwrite=args.force,
            report=args.report, progress=progress, checkpoint_seconds=args.checkpoint_seconds,
        )  # fmt: skip
    except Interrupted as exc:
        print(f"pgpbulk: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except WorkerCrashed as exc:
        print(f"pgpbulk: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Stopped as exc:  # the key provider cannot go on: one line, resumable
        print(f"pgpbulk: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.kind == BadPassphrase.__name__ else EXIT_FAILED
    print(_summary(rep))
    if rep.broker is not None:
        print(_broker_line(rep.broker))
    status = EXIT_OK
    if rep.verify is not None and not rep.verify["ok"]:
        v = rep.verify
        print(f"pgpbulk: verification FAILED ({len(v['mismatches'])} mismatches, "
              f"{len(v['self_check_failures'])} self-check failures, {v['checked']}/{v['expected']} "
              "messages found); nothing was written", file=sys.stderr)  # fmt: skip
        status = EXIT_FAILED
    elif rep.verify is not None:
        print(f"verify: {rep.verify['checked']} messages checked, all match")
    if rep.outcomes.get("not-ours"):
        print(f"pgpbulk: warning: {rep.outcomes['not-ours']} messages are not encrypted to any given --key; "
              "copied unchanged", file=sys.stderr)  # fmt: skip
    if rep.outcomes.get("copied"):
        where = f"see {args.report}" if args.report else "use --report FILE for the list"
        print(f"pgpbulk: {rep.outcomes['copied']} messages could not be processed and were copied unchanged "
              f"({where})", file=sys.stderr)  # fmt: skip
        status = EXIT_FAILED
    return status


def _prestart(args: argparse.Namespace) -> None:
    """Start the pool's fork server first, so that it imports the workers' modules while this process
    imports its own (two cores busy instead of one, then the other).

    Not with ``agent:`` or ``pkcs11:`` keys (served through the card broker): there the card is the
    bottleneck, and :func:`~engine.mail.job.run_job` starts the server once the card has its first
    messages, so that the server's start does not delay them."""
    if any(spec.lower().startswith(("agent:", "pkcs11:")) for spec in getattr(args, "key", None) or ()):
        return
    _start_server(args.workers)


def _start_server(workers: int | None) -> None:
    """Start the fork server for ``workers`` with what the archive jobs' workers load."""
    from engine.mail import WORKER_MODULES
    from engine.scheduler.start import prestart

    prestart(workers, None, (*WORKER_MODULES, *WORKER_WARM))


def prestart_early(words: Sequence[str]) -> None:
    """Start the pool's fork server from the command's raw arguments, before its parser is built (which
    loads the source formats, some 25 ms): when they plainly ask for a pool (``--workers N`` or
    ``--workers=N`` with N > 1, or no ``--workers``: all cores) and name no card key, as :func:`_prestart`
    decides. Anything it cannot read for certain (an abbreviated option, help) is left to
    :func:`_prestart`, after parsing; a run that then stops on a usage error leaves the server to exit
    with it."""
    workers: int | None = None
    for i, word in enumerate(words):
        if word in ("-h", "--help") or any(mark in word.lower() for mark in ("agent:", "pkcs11:")):
            return
        name, eq, value = word.partition("=")
        if name == "--workers":
            try:
                workers = int(value if eq else words[i + 1])
            except (IndexError, ValueError):
                return
        elif len(name) > 2 and "--workers".startswith(name):
            return  # an abbreviation of --workers: let the parser read it
    _start_server(workers)


def _cmd_encrypt(args: argparse.Namespace) -> int:
    _prestart(args)
    from engine.mail.crypto import CryptoConfig
    from engine.mail.job import JobOptions

    opts = JobOptions("encrypt", keep_subject=args.keep_subject, verify=args.verify)
    return _run(args, opts, CryptoConfig(recipients=_recipients(args)))


def _cmd_decrypt(args: argparse.Namespace) -> int:
    _prestart(args)
    from engine.mail.crypto import CryptoConfig
    from engine.mail.job import JobOptions

    return _run(args, JobOptions("decrypt", verify=args.verify), CryptoConfig(keys=_keys(args)))


def _cmd_reencrypt(args: argparse.Namespace) -> int:
    _prestart(args)
    from engine.mail.crypto import CryptoConfig
    from engine.mail.job import JobOptions

    opts = JobOptions("reencrypt", args.keep_subject, args.verify, args.mode, args.encrypt_plain)
    return _run(args, opts, CryptoConfig(recipients=_recipients(args), keys=_keys(args)))


def _common(p: argparse.ArgumentParser) -> None:
    from engine.mail.source import FORMATS, SINK_FORMATS

    p.add_argument(
        "src", metavar="SRC", help="source archive: mbox file, Maildir or folder of .eml (never modified)"
    )
    p.add_argument("-o", "--output", required=True, metavar="DST",
                   help="destination; written as DST.partial and renamed when complete (files 0600)")  # fmt: skip
    p.add_argument("--format", choices=FORMATS, help="source format (default: detected from SRC)")
    p.add_argument("--output-format", choices=SINK_FORMATS, help="destination format (default: as SRC)")
    p.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: all cores; 1: in-process)"
    )
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="messages per task (default 256; 64 with card or token keys)")  # fmt: skip
    p.add_argument("--verify", action="store_true",
                   help="check every message in memory and re-read the output before it is renamed into place")  # fmt: skip
    p.add_argument("--report", metavar="FILE", help="write a JSON report (counts, failures, hashes, rates)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from DST.journal")
    p.add_argument("--checkpoint-seconds", type=float, default=0.0, metavar="S",
                   help="make progress durable after every batch (default), or at most every S seconds: "
                   "faster on slow disks, a crash redoes up to S seconds of work")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing DST (or an interrupted run)")
    p.add_argument(
        "--gnupghome", metavar="DIR", help="GnuPG home for keyring lookups and agent: (default $GNUPGHOME)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress")


def _recipient_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-r", "--recipient", action="append", required=True, metavar="WHO",
                   help="certificate file, fingerprint or address in the keyring, or wkd:ADDRESS (repeatable)")  # fmt: skip
    p.add_argument(
        "--cafile", metavar="FILE", help="CA certificates for wkd: lookups (default: system store)"
    )
    p.add_argument(
        "--wkd-connect", metavar="HOST:PORT", help="send wkd: lookups to this server (staging, tests)"
    )
    p.add_argument(
        "--keep-subject", action="store_true", help="leave the Subject readable outside (RFC 9788 opt-out)"
    )


def _key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", action="append", required=True, metavar="KEYSPEC",
                   help="secret key file (or file:PATH), agent:[FINGERPRINT], or pkcs11:URI (repeatable)")  # fmt: skip
    p.add_argument("--passphrase-file", metavar="FILE",
                   help=f"passphrase (or token PIN) on the first line; else ${PASSPHRASE_ENV} or a prompt")  # fmt: skip
    p.add_argument(
        "--cert", action="append", metavar="FILE", help="certificate of a pkcs11: key (repeatable)"
    )


def register(sub: Any) -> None:
    """Add ``encrypt``, ``decrypt`` and ``reencrypt`` to the ``pgpbulk`` sub-parsers."""
    p = sub.add_parser("encrypt", help="encrypt a mail archive into PGP/MIME with header protection",
                       description="Encrypt every plain message of an mbox, Maildir or .eml folder into PGP/MIME "
                       "(RFC 3156) with header protection (RFC 9788); already encrypted messages pass unchanged.",
                       epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    _common(p)
    _recipient_args(p)
    p.set_defaults(func=_cmd_encrypt)

    p = sub.add_parser("decrypt", help="decrypt the PGP/MIME messages of a mail archive",
                       description="Decrypt every PGP/MIME message; ours come back byte-identical to the original.",
                       epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    _common(p)
    _key_args(p)
    p.set_defaults(func=_cmd_decrypt)

    p = sub.add_parser("reencrypt", help="move an encrypted archive to new recipients (re-wrap or in full)",
                       description="Re-encrypt PGP/MIME messages for new recipients: rewrap keeps each data packet "
                       "and writes new session key packets; full decrypts and encrypts afresh; auto re-wraps unless "
                       "the container is weak (no MDC, 64-bit cipher).", epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    _common(p)
    _key_args(p)
    _recipient_args(p)
    p.add_argument("--mode", choices=("rewrap", "full", "auto"), default="auto", help="default: auto")
    p.add_argument(
        "--encrypt-plain", action="store_true", help="also encrypt messages that are not encrypted"
    )
    p.set_defaults(func=_cmd_reencrypt)


__all__ = ["register"]
