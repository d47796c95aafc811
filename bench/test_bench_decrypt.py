"""Benchmarks of the ``decrypt`` family: decryption of 8 KiB messages.

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_decrypt.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "decrypt"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
