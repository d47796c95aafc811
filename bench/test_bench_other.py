"""Benchmarks of the ``other`` family: jobs of families without a file of their own (new jobs land here until they get one).

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_other.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "other"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)


def test_job_modules_load() -> None:
    """Every ``engine/bench/jobs_*.py`` imports and registers (a broken one would vanish from runs)."""
    from engine.bench import registry

    registry.discover()
    assert registry.LOAD_ERRORS == {}
