"""Benchmark registry: tests call the ``record`` fixture; a ratio table is printed at the end of the run.

``record(job, impl, throughput, unit)`` stores one measurement (higher is better). The summary groups by
job and shows each implementation's throughput and its ratio to the job's "native" entry (or the first
one recorded). Peers that could not run go to the ``record_skip`` fixture and are listed as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class Result:
    job: str
    impl: str
    throughput: float | None  # None: skipped
    unit: str
    note: str = ""


RESULTS: list[Result] = []


def add_result(job: str, impl: str, throughput: float, unit: str = "B/s", note: str = "") -> None:
    """Store one measurement: ``throughput`` in ``unit`` (bytes per second with unit "B/s")."""
    RESULTS.append(Result(job, impl, throughput, unit, note))


def add_skip(job: str, impl: str, why: str) -> None:
    """Name a peer that was not measured, so the table says so instead of leaving it out."""
    RESULTS.append(Result(job, impl, None, "", why))


@pytest.fixture
def record() -> Callable[..., None]:
    """``record(job, impl, throughput, unit="B/s", note="")``."""
    return add_result


@pytest.fixture
def record_skip() -> Callable[[str, str, str], None]:
    """``record_skip(job, impl, why)``."""
    return add_skip


def _fmt(value: float, unit: str) -> str:
    if unit == "B/s":
        return f"{value / 1e9:9.3f} GB/s"
    return f"{value / 1e6:9.3f} M {unit}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("throughput (ratio = this / reference)")
    jobs: dict[str, list[Result]] = {}
    for r in RESULTS:
        jobs.setdefault(r.job, []).append(r)
    for job, rows in jobs.items():
        measured = [r for r in rows if r.throughput is not None]
        ref = next((r for r in measured if r.impl == "native"), measured[0] if measured else None)
        tr.write_line(f"{job}  (reference: {ref.impl if ref else '-'})")
        for r in rows:
            if r.throughput is None:
                tr.write_line(f"    {r.impl:<28} {'skipped':>14}   {r.note}")
                continue
            ratio = r.throughput / ref.throughput if ref and ref.throughput else float("nan")
            tr.write_line(f"    {r.impl:<28} {_fmt(r.throughput, r.unit)}   x{ratio:8.3f}   {r.note}")
