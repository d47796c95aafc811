"""``pgpbulk bench``: run the throughput jobs, print the table, write JSON and a chart, gate on ratios.

Exit codes: 0 ok, 1 the gate failed (or our own implementation failed to run), 2 usage error.
Registered in ``engine/cli.py`` with :func:`add_bench_parser`; :func:`main` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from engine.bench.compare import DEFAULT_FAIL_BELOW

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Measure pgpbulk's hot paths and the peers (gpg, sq, pybase64, the pure-Python twins) on the same "
    "generated data in the same run, and report throughput and ratios. Absolute times on shared "
    "machines vary; the ratios (and the --compare gate on the stable ones) are what to read."
)
EPILOG = (
    "Exit codes: 0 ok, 1 a gated ratio dropped (or our code failed), 2 usage. "
    "Data is generated from a seed and cached in $PGPBULK_BENCH_CACHE or ~/.cache/pgpbulk/bench."
)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be a fraction between 0 and 1 (0.25 = a 25% drop)")
    return value


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--quick", action="store_true", help="small data and few repeats (under 60 s); what CI runs"
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only jobs matching NAME (exact or glob; repeatable, or comma-separated)",
    )
    p.add_argument("--list", action="store_true", help="list the jobs and their implementations, then exit")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (schema: engine.bench.schema)")
    p.add_argument(
        "--compare", metavar="FILE", help="gate against a saved --json file (exit 1 on regression)"
    )
    p.add_argument(
        "--fail-below",
        type=_fraction,
        metavar="FRACTION",
        help=f"with --compare: fail when a gated ratio fell by over FRACTION (default {DEFAULT_FAIL_BELOW})",
    )
    p.add_argument("--plot", metavar="FILE", help="write a chart (.png or .svg; needs matplotlib)")
    p.add_argument("--seed", type=int, help="data generator seed (default: fixed)")
    p.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: shrink all sizes
    p.set_defaults(func=run_bench)
    return p


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` command to ``pgpbulk``'s subparsers."""
    p = subparsers.add_parser(
        "bench",
        help="throughput benchmarks against gpg, sq and the pure twins",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    return _configure(p)


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser for ``python -m engine.bench``."""
    return _configure(argparse.ArgumentParser(prog="pgpbulk bench", description=DESCRIPTION, epilog=EPILOG))


def _usage(message: str) -> int:
    print(f"pgpbulk bench: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{message}")
        sys.stderr.flush()


def _write_json(doc: dict[str, Any], path: str) -> None:
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _list(jobs: Sequence[Any]) -> int:
    from engine.bench import registry

    for job in jobs:
        family = registry.family(job)
        print(
            f"{job.name:<16} {job.unit:<8} quick budget {job.quick_budget:g} s, family {family}: {job.description}"
        )
        for impl in job.impls:
            reason = impl.missing_reason()
            state = f"missing: {reason}" if reason else ("gated" if impl.gated else "")
            print(f"  {impl.name:<24} {impl.role:<6} {state}")
    return EXIT_OK


def run_bench(args: argparse.Namespace) -> int:
    """Run ``pgpbulk bench`` for parsed ``args``; returns the exit code."""
    from engine.bench import compare, plot, registry, report, runner

    if args.fail_below is not None and not args.compare:
        return _usage("--fail-below needs --compare FILE")
    if not args.scale > 0:
        return _usage("--scale must be positive")
    patterns = [p.strip() for item in args.only or [] for p in item.split(",") if p.strip()]
    try:
        jobs = registry.select(patterns or None)
    except KeyError as exc:
        names = ", ".join(registry.discover()) or "none"
        return _usage(f"no bench job matches {exc.args[0]!r} (jobs: {names})")
    if args.list:
        return _list(jobs)
    try:
        previous = compare.load(args.compare) if args.compare else None
        if args.plot:
            plot.check_target(args.plot)
    except (compare.CompareError, plot.PlotError) as exc:
        return _usage(str(exc))

    started = time.perf_counter()
    doc = runner.run(
        jobs,
        quick=args.quick,
        seed=args.seed if args.seed is not None else registry.DEFAULT_SEED,
        progress=_progress,
        scale=args.scale,
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    doc["seconds"] = round(time.perf_counter() - started, 2)
    sys.stdout.write(report.render(doc))
    if args.json:
        _write_json(doc, args.json)
        print(f"JSON written to {args.json}")
    if args.plot:
        print(f"chart written to {plot.plot(doc, args.plot)}")

    for line in report.budget_lines(doc):
        if line.startswith("OVER BUDGET"):
            print(f"pgpbulk bench: warning: {line[len('OVER BUDGET: ') :]}", file=sys.stderr)
    status = EXIT_OK
    broken = [
        f"{job['name']}: {r['impl']}"
        for job in doc["jobs"]
        for r in job["results"]
        if r["role"] == "us" and r["status"] == "failed"
    ]
    if broken:
        print(f"our own implementation failed: {', '.join(broken)}", file=sys.stderr)
        status = EXIT_FAILED
    if previous is not None:
        fail_below = args.fail_below if args.fail_below is not None else DEFAULT_FAIL_BELOW
        checks = compare.compare(previous, doc, fail_below)
        sys.stdout.write(compare.render(checks, args.compare, fail_below, compare.context(previous, doc)))
        if compare.failed(checks):
            status = EXIT_FAILED
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m engine.bench`` (the same options as ``pgpbulk bench``)."""
    args = build_parser().parse_args(argv)
    try:
        return run_bench(args)
    except OSError as exc:
        return _usage(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        print("pgpbulk bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
