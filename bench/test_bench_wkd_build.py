"""Benchmarks of the ``wkd-build`` family: WKD tree builds from a keyring.

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_wkd_build.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "wkd-build"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
