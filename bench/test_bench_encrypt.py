"""Benchmarks of the ``encrypt`` family: encryption of 8 KiB messages and of one large file.

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_encrypt.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "encrypt"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
