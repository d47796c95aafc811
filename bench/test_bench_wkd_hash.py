"""Benchmarks of the ``wkd-hash`` family: WKD hashes: wkd_hashes against its twin, hashlib + pure-Python z-base-32, gpg-wks-client.

Generated from the ``engine.bench`` registry (see ``bench/conftest.py``): one case per job and
implementation. ``python -m pytest bench/test_bench_wkd_hash.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "wkd-hash"


def test_bench(bench_run: Callable[[object], None], bench_case: object) -> None:
    bench_run(bench_case)
