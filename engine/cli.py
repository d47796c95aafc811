"""The ``pgpbulk`` command line: parses arguments, calls the library, prints its report.

Every failure the user can cause (bad input, missing file, bad option) ends with exit code 2 and one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import engine

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

CHUNK = 1 << 20


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


@contextlib.contextmanager
def _open_in(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as f:
            yield f


@contextlib.contextmanager
def _open_out(path: str | None) -> Iterator[BinaryIO]:
    """Write to stdout, or to PATH via a temporary file renamed into place only on success."""
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _cmd_armor(args: argparse.Namespace) -> int:
    from engine.armor import ArmorWriter

    with (
        _open_in(args.input) as src,
        _open_out(args.output) as dst,
        ArmorWriter(dst, kind=args.kind, crc=not args.no_crc) as writer,
    ):
        while chunk := src.read(CHUNK):
            writer.write(chunk)
    return EXIT_OK


def _cmd_dearmor(args: argparse.Namespace) -> int:
    from engine.armor import ArmorReader

    with _open_in(args.input) as src, _open_out(args.output) as dst:
        reader = ArmorReader(src, strict=args.strict)
        while chunk := reader.read(CHUNK):
            dst.write(chunk)
    return EXIT_OK


def _addresses(items: Sequence[str]) -> Iterator[str]:
    for item in items:
        if item == "-":
            for line in sys.stdin:
                line = line.strip()
                if line:
                    yield line
        else:
            yield item


def _cmd_wkd_hash(args: argparse.Namespace) -> int:
    from engine.errors import InvalidArgument
    from engine.wkd import split_address, wkd_hashes

    out = sys.stdout
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        hashes = wkd_hashes([local for local, _ in batch])
        out.write("".join(f"{h} {addr}\n" for h, (_, addr) in zip(hashes, batch, strict=True)))
        batch.clear()

    for number, address in enumerate(_addresses(args.addresses), 1):
        try:
            local, _domain = split_address(address)
        except InvalidArgument as exc:
            flush()
            raise CliError(f"address {number} ({address!r}): {exc}") from None
        batch.append((local, address))
        if len(batch) >= 65536:
            flush()
    flush()
    return EXIT_OK


def _cmd_wkd_url(args: argparse.Namespace) -> int:
    from engine.wkd import wkd_url

    method = "direct" if args.direct else "advanced"
    for address in _addresses(args.addresses):
        print(wkd_url(address, method=method))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return run_demo(out=sys.stdout)


def _cmd_version(args: argparse.Namespace) -> int:
    from engine import _native

    kernels = ", ".join(f"{k}={v}" for k, v in _native.describe().items())
    print(f"pgpbulk {engine.__version__} (kernels: {kernels})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgpbulk",
        description=(
            "Bulk OpenPGP for mail: ASCII armor, Web Key Directory hashes and URLs, and (growing) archive "
            "encryption. Fast paths are native; ENGINE_NO_EXTENSIONS=1 forces the pure-Python twins."
        ),
        epilog="Exit codes: 0 success, 1 a check failed, 2 bad input or usage. Try 'pgpbulk demo'.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version and which kernels are in use"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "armor",
        help="ASCII-armor binary OpenPGP data (streaming)",
        description="Wrap binary data in OpenPGP ASCII armor (RFC 9580 6.2): 64-column base64 and a CRC-24 line.",
    )
    p.add_argument("input", nargs="?", metavar="IN", help="input file (default: stdin)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout); written atomically")
    p.add_argument(
        "--kind", default="MESSAGE", help="armor kind: MESSAGE, 'PUBLIC KEY BLOCK', ... (default MESSAGE)"
    )
    p.add_argument(
        "--no-crc", action="store_true", help="omit the CRC-24 line (as RFC 9580 asks for v6-only data)"
    )
    p.set_defaults(func=_cmd_armor)

    p = sub.add_parser(
        "dearmor",
        help="decode ASCII armor to binary (streaming)",
        description="Decode one ASCII-armored block to binary. Whitespace and CRLF are ignored; a missing CRC is "
        "accepted; a wrong CRC is a warning (an error with --strict).",
    )
    p.add_argument("input", nargs="?", metavar="IN", help="input file (default: stdin)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout); written atomically")
    p.add_argument("--strict", action="store_true", help="a wrong CRC-24 is an error")
    p.set_defaults(func=_cmd_dearmor)

    wkd = sub.add_parser("wkd", help="Web Key Directory tools", description="Web Key Directory (WKD) tools.")
    wsub = wkd.add_subparsers(dest="wkd_command", metavar="WKD_COMMAND", required=True)
    p = wsub.add_parser(
        "hash",
        help="print the WKD hash of addresses",
        description="Print 'HASH ADDRESS' per address: z-base-32 of SHA-1 of the local part with ASCII letters "
        "lowercased (non-ASCII kept), as gpg-wks-client --print-wkd-hash does.",
    )
    p.add_argument(
        "addresses", nargs="+", metavar="ADDRESS", help="mail address, or '-' to read one per line from stdin"
    )
    p.set_defaults(func=_cmd_wkd_hash)
    p = wsub.add_parser(
        "url",
        help="print the WKD lookup URL of addresses",
        description="Print the URL a WKD client fetches for each address (advanced method unless --direct).",
    )
    p.add_argument("addresses", nargs="+", metavar="ADDRESS", help="mail address, or '-' to read from stdin")
    p.add_argument("--direct", action="store_true", help="the direct method (https://DOMAIN/.well-known/...)")
    p.set_defaults(func=_cmd_wkd_url)

    from engine.wkd.cli import register as register_wkd

    register_wkd(wsub)

    p = sub.add_parser(
        "demo",
        help="run the main jobs on built-in sample data and show throughput",
        description="Run pgpbulk's jobs on built-in sample data (nothing is read from or written to your files "
        "outside a temporary directory) and print what was done and how fast.",
    )
    p.set_defaults(func=_cmd_demo)

    from engine.mail.cli import register as register_mail

    register_mail(sub)

    from engine.sop import add_sop_parser

    add_sop_parser(sub)

    from engine.bench.cli import add_bench_parser

    add_bench_parser(sub)
    return parser


#: Commands whose parser is built alone (not the whole tree, which imports every command's module,
#: about 0.2 s): the archive jobs, which start their worker pool from the parsed arguments.
MAIL_COMMANDS = frozenset({"encrypt", "decrypt", "reencrypt"})


def _mail_parser() -> argparse.ArgumentParser:
    """``pgpbulk`` with only ``encrypt``, ``decrypt`` and ``reencrypt``: same programme name, usage and
    errors for those commands as :func:`build_parser`."""
    from engine.mail.cli import register as register_mail

    parser = argparse.ArgumentParser(prog="pgpbulk")
    parser.add_argument("--version", action="store_true", help="print the version and which kernels are in use")
    register_mail(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def _parse(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and the parsed arguments; ``sop`` hands all its arguments to its own main."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "sop":
        from engine.sop.cli import main as sop_main

        return argparse.ArgumentParser(prog="pgpbulk"), argparse.Namespace(
            version=False, func=lambda _args: sop_main(words[1:])
        )
    if words and words[0] in MAIL_COMMANDS:
        from engine.mail.cli import prestart_early

        prestart_early(words[1:])  # the fork server loads while this process builds the parser
        parser = _mail_parser()
    else:
        parser = build_parser()
    return parser, parser.parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    status = _main(argv)
    if argv is None:  # the ``pgpbulk`` script, which exits now: spare its last collections a walk over
        gc.freeze()  # every object still alive (tens of ms); atexit handlers and cleanups still run
    return status


def _main(argv: Sequence[str] | None) -> int:
    from engine.errors import PgpBulkError

    parser, args = _parse(argv)
    if args.version:
        return _cmd_version(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (PgpBulkError, CliError, OSError, ValueError, UnicodeError) as exc:
        if isinstance(exc, BrokenPipeError):
            with contextlib.suppress(OSError):
                sys.stderr.close()
            return EXIT_FAILED
        print(f"pgpbulk: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pgpbulk: interrupted", file=sys.stderr)
        return 130


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__
