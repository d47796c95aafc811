"""Benchmarks of the ``rewrap`` family: re-wrapping messages to a new key (PKESK only, data packet kept).

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_rewrap.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "rewrap"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
