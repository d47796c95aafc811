"""Benchmarks of the ``archive`` family: whole archives (mbox / Maildir) encrypted and re-encrypted on the process pool.

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_archive.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "archive"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
