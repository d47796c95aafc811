"""Argument parsing for ``pgpbulk sop`` with the SOP exit codes for usage errors.

argparse's own failures (exit 2) are turned into SOP codes: an unknown subcommand is
UNSUPPORTED_SUBCOMMAND (69), an unknown option UNSUPPORTED_OPTION (37), a missing argument MISSING_ARG (19).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, BinaryIO, NoReturn

from engine.sop import commands as c
from engine.sop.errors import (
    MISSING_ARG,
    UNSPECIFIED,
    UNSUPPORTED_OPTION,
    UNSUPPORTED_SUBCOMMAND,
    SopError,
    exit_code_for,
)

PROG = "pgpbulk sop"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises SopError instead of exiting with status 2."""

    def error(self, message: str) -> NoReturn:
        if "invalid choice" in message and "argument COMMAND" in message:
            raise SopError(UNSUPPORTED_SUBCOMMAND, message)
        if "required" in message or "expected one argument" in message:
            raise SopError(MISSING_ARG, message)
        raise SopError(UNSUPPORTED_OPTION, message)


def _add(sub: Any, name: str, helptext: str, func: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext, description=helptext, allow_abbrev=False)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        description="The Stateless OpenPGP command line (draft-dkg-openpgp-stateless-cli), a subset.",
        epilog="Exit codes follow the draft: 19 missing argument, 29 cannot decrypt, 37 unsupported "
        "option, 41 bad data, 61 missing input, 67 key is protected, 69 unsupported subcommand, ...",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = _add(sub, "version", "print version information", c.cmd_version)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--backend", action="store_true", help="the cryptographic library in use")
    group.add_argument("--extended", action="store_true", help="more lines of detail")
    group.add_argument("--sop-spec", action="store_true", help="the SOP draft this follows")

    p = _add(sub, "list-profiles", "list the profiles of a subcommand", c.cmd_list_profiles)
    p.add_argument("subcommand", metavar="SUBCOMMAND")

    p = _add(sub, "generate-key", "generate a secret key (armored on stdout)", c.cmd_generate_key)
    p.add_argument("--no-armor", action="store_true")
    p.add_argument("--with-key-password", metavar="PASSWORD", help="indirect input: protect the key")
    p.add_argument("--profile", default="default", help="see 'list-profiles generate-key'")
    p.add_argument("userids", nargs="*", metavar="USERID")

    p = _add(sub, "extract-cert", "the certificate of the secret key on stdin", c.cmd_extract_cert)
    p.add_argument("--no-armor", action="store_true")

    p = _add(sub, "encrypt", "encrypt stdin to CERTS", c.cmd_encrypt)
    p.add_argument("--as", dest="as_", choices=("binary", "text"), default="binary")
    p.add_argument("--no-armor", action="store_true")
    p.add_argument("--profile", default="default", help="see 'list-profiles encrypt'")
    p.add_argument("--with-password", action="append", default=[], help="unsupported (exit 37)")
    p.add_argument("--sign-with", action="append", default=[], help="unsupported (exit 37)")
    p.add_argument("certs", nargs="*", metavar="CERTS")

    p = _add(sub, "decrypt", "decrypt stdin with KEYS or a session key", c.cmd_decrypt)
    p.add_argument("--session-key-out", metavar="SESSIONKEY", help="indirect output: ALGO:HEXKEY")
    p.add_argument("--with-session-key", action="append", default=[], metavar="SESSIONKEY")
    p.add_argument("--with-key-password", action="append", default=[], metavar="PASSWORD")
    p.add_argument("--with-password", action="append", default=[], help="unsupported (exit 37)")
    p.add_argument("--verify-out", "--verifications-out", dest="verify_out", help="unsupported (exit 37)")
    p.add_argument("--verify-with", action="append", default=[], help="unsupported (exit 37)")
    p.add_argument("keys", nargs="*", metavar="KEYS")

    p = _add(sub, "armor", "ASCII-armor binary OpenPGP data", c.cmd_armor)
    p.add_argument("--label", choices=("auto", "sig", "key", "cert", "message"), default="auto")

    _add(sub, "dearmor", "remove ASCII armor", c.cmd_dearmor)
    return parser


def main(
    argv: Sequence[str] | None = None, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
) -> int:
    """Run one SOP command; returns its exit code (never raises for user errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    src = stdin if stdin is not None else sys.stdin.buffer
    dst = stdout if stdout is not None else sys.stdout.buffer
    command = ""
    try:
        parser = build_parser()
        if argv in ([], ["help"]):
            parser.print_help(sys.stdout if argv else sys.stderr)
            return 0 if argv else UNSUPPORTED_SUBCOMMAND
        args = parser.parse_args(argv)
        command = args.command
        code = int(args.func(args, src, dst))
        dst.flush()
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return UNSPECIFIED
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure becomes one line and a SOP exit code
        code = exit_code_for(exc, command)
        where = f"{PROG} {command}" if command else PROG
        print(f"{where}: {exc or type(exc).__name__}", file=sys.stderr)
        if code == UNSPECIFIED and os.environ.get("PGPBULK_DEBUG"):
            traceback.print_exc()
        return code


def add_sop_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sop`` on pgpbulk's subparsers; everything after ``sop`` goes to :func:`main`."""
    p = subparsers.add_parser(
        "sop",
        help="Stateless OpenPGP CLI subset (version, generate-key, extract-cert, encrypt, decrypt, armor, "
        "dearmor)",
        description="Stateless OpenPGP command line; run 'pgpbulk sop help' for its commands.",
        add_help=False,
        prefix_chars="+",  # no options of its own: "--help", "--no-armor" ... all pass through to main()
    )
    p.add_argument("sop_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: main(args.sop_args))
    return p
