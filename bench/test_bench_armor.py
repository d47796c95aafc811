"""Benchmarks of the ``armor`` family: ASCII armor: armor / dearmor 1 MiB, armor 64 MiB against fresh allocation, ArmorWriter streaming.

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_armor.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "armor"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
