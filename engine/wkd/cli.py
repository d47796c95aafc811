"""``pgpbulk wkd build | check | fetch | serve-config``: argument parsing only; the work is in the library.

The lead's ``engine/cli.py`` calls :func:`register` with the ``wkd`` sub-parsers; errors the user can
cause are :class:`engine.errors.PgpBulkError` (exit 2, one line, printed by ``engine.cli.main``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_OK, EXIT_FAILED = 0, 1


def _cmd_build(args: argparse.Namespace) -> int:
    from engine.scheduler.start import prestart

    prestart(args.workers, None, ["engine.wkd.publish"])  # the workers' modules load while ours do
    from engine.scheduler import Progress
    from engine.wkd.publish import build

    with Progress(unit="key", quiet=args.quiet or not sys.stderr.isatty(), interval=5.0) as progress:
        report = build(
            args.out,
            args.sources,
            gnupghome=args.gnupghome,
            domains=args.domain,
            method=args.method,
            include_expired=args.include_expired,
            include_revoked=args.include_revoked,
            submission_address=args.submission_address,
            protocol_version=args.protocol_version,
            workers=args.workers,
            incremental=args.incremental,
            manifest_path=args.manifest,
            progress=progress,
        )
    if args.verbose:
        print(
            f"  time: parse {report.seconds_parse:.2f} s, verify {report.seconds_verify:.2f} s, filter "
            f"{report.seconds_select:.2f} s (worker CPU, summed), write {report.seconds_write:.2f} s "
            f"(of which sync {report.seconds_sync:.2f} s)",
            file=sys.stderr,
        )
        for reason, examples in sorted(report.examples.items()):
            print(f"  skipped ({reason}): {', '.join(examples)}", file=sys.stderr)
    for problem in report.problems:
        print(f"pgpbulk: warning: {problem.source} byte {problem.offset}: {problem.reason}", file=sys.stderr)
    if report.diff is not None:
        print(f"wkd build: {report.diff.line()} (files reused: {report.files_reused})")
    print(report.summary())
    print(f"wkd build: published {report.version}; manifest {report.manifest_path}")
    return EXIT_OK


def _manifest_addresses(path: str) -> list[tuple[str, list[str]]]:
    from engine.wkd.manifest import load

    return [(e["address"], e["fingerprints"]) for e in load(path).entries]


def _cmd_check(args: argparse.Namespace) -> int:
    from engine.wkd.check import check_address, ssl_context

    items: list[tuple[str, Any]] = [(a, None) for a in args.addresses]
    if args.manifest:
        items += _manifest_addresses(args.manifest)
    if not items:
        raise ValueError("nothing to check: name addresses or --manifest FILE")
    ctx = ssl_context(args.cafile)
    failed = 0
    for address, expected in items:
        res = check_address(
            address,
            connect=args.connect,
            method=args.method,
            expected_fingerprints=expected,
            timeout=args.timeout,
            context=ctx,
        )
        failed += not res.ok
        if not args.quiet or not res.ok:
            print(res.line())
    print(f"wkd check: {len(items) - failed} passed, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _cmd_fetch(args: argparse.Namespace) -> int:
    from engine.wkd.check import fetch

    data = fetch(args.address, cafile=args.cafile, connect=args.connect, method=args.method)
    if args.armor:
        from engine.armor import armor

        data = armor(data, "PUBLIC KEY BLOCK")
    if args.output and args.output != "-":
        tmp = f"{args.output}.partial-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, args.output)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return EXIT_OK


def _cmd_serve_config(args: argparse.Namespace) -> int:
    from engine.wkd import serve_config

    kw = {"certificate": args.ssl_certificate, "certificate_key": args.ssl_certificate_key}
    if args.apache:
        text = serve_config.apache(args.domain, args.webroot, **kw)
    else:
        text = serve_config.nginx(args.domain, args.webroot, listen=args.listen, **kw)
    sys.stdout.write(text)
    return EXIT_OK


def _lookup_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cafile", metavar="FILE", help="trust these CA certificates instead of the system's")
    p.add_argument(
        "--connect",
        metavar="HOST:PORT",
        help="connect here for every name (SNI and Host kept): staging, tests",
    )
    p.add_argument(
        "--method",
        choices=("auto", "advanced", "direct"),
        default="auto",
        help="auto (default): advanced, direct when openpgpkey.DOMAIN does not resolve",
    )


def register(wsub: Any) -> None:
    """Add ``build``, ``check``, ``fetch`` and ``serve-config`` to the ``pgpbulk wkd`` sub-parsers."""
    p = wsub.add_parser(
        "build",
        help="build and atomically publish WKD trees from keyrings",
        description="Publish each valid User ID address (only that User ID, verified self-signature) under "
        "OUT/.well-known/openpgpkey, switching to the new tree atomically. SOURCES: keyring files (binary or "
        "armored), directories of .asc/.gpg/.pgp files, '-' for stdin.",
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="keyring file, directory, or '-' (stdin)")
    p.add_argument("--out", required=True, metavar="WEBROOT", help="web root; the tree goes to .well-known/")
    p.add_argument(
        "--domain", action="append", metavar="D", help="publish this domain (repeat); default: all"
    )
    p.add_argument(
        "--method",
        choices=("advanced", "direct", "both"),
        default="advanced",
        help="advanced (default): DOMAIN/hu/HASH for openpgpkey.DOMAIN; direct: hu/HASH for DOMAIN itself "
        "(one domain); both",
    )
    p.add_argument("--include-expired", action="store_true", help="publish expired keys too")
    p.add_argument(
        "--include-revoked", action="store_true", help="publish revoked keys/User IDs (revocations)"
    )
    p.add_argument("--submission-address", metavar="ADDR", help="write 'submission-address: ADDR' to policy")
    p.add_argument("--protocol-version", type=int, metavar="N", help="write 'protocol-version: N' to policy")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: all cores; 0: none)")
    p.add_argument("--incremental", action="store_true", help="reuse unchanged files; report the changes")
    p.add_argument("--gnupghome", metavar="DIR", help="also read the public keys of this GnuPG home")
    p.add_argument("--manifest", metavar="FILE", help="manifest path (default: WEBROOT.wkd-manifest.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="show examples of skipped addresses")
    p.set_defaults(func=_cmd_build)

    p = wsub.add_parser(
        "check",
        help="check what a server serves for addresses (exit 0 only if all pass)",
        description="Look addresses up over HTTPS like a WKD client and check status, Content-Type, CORS, "
        "HEAD, policy and that each key carries exactly the looked-up User ID.",
    )
    p.add_argument("addresses", nargs="*", metavar="ADDRESS", help="mail address to look up (repeatable)")
    p.add_argument("--manifest", metavar="FILE", help="check every address of this build manifest")
    p.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="seconds per HTTPS request (default 10)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print failures and the total only")
    _lookup_options(p)
    p.set_defaults(func=_cmd_check)

    p = wsub.add_parser("fetch", help="fetch an address's key over WKD", description="Print or save the key.")
    p.add_argument("address", metavar="ADDRESS", help="mail address whose key to fetch")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--armor", action="store_true", help="ASCII-armor the key")
    _lookup_options(p)
    p.set_defaults(func=_cmd_fetch)

    p = wsub.add_parser(
        "serve-config",
        help="print an nginx or Apache snippet serving the WKD tree",
        description="Server blocks for openpgpkey.DOMAIN (advanced) and DOMAIN (direct): binary keys, CORS, "
        "HEAD, no listing, policy served.",
    )
    server = p.add_mutually_exclusive_group(required=True)
    server.add_argument("--nginx", action="store_true", help="an nginx server block (include it in http {})")
    server.add_argument("--apache", action="store_true", help="Apache VirtualHost blocks (mod_headers)")
    p.add_argument("domain", metavar="DOMAIN", help="mail domain the tree serves")
    p.add_argument("webroot", metavar="WEBROOT", help="the --out directory of 'pgpbulk wkd build'")
    p.add_argument("--listen", default="443 ssl", help="nginx listen parameters (default '443 ssl')")
    p.add_argument("--ssl-certificate", metavar="FILE", help="TLS certificate chain (PEM) for the server")
    p.add_argument("--ssl-certificate-key", metavar="FILE", help="its private key (PEM)")
    p.set_defaults(func=_cmd_serve_config)
