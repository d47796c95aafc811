"""The pytest-benchmark suite, generated from the ``engine.bench`` registry (one source of truth).

Each ``bench/test_bench_FAMILY.py`` names a job family (``FAMILY = "armor"``) and has one test taking
``bench_case``; :func:`pytest_generate_tests` parametrizes it over every (job, implementation) of that
family (:func:`engine.bench.registry.family`), so a job added to the registry appears here by itself;
``test_bench_other.py`` takes the jobs of families without a file of their own. Every case calls the
implementation's own ``measure(data)`` on the job's generated data, exactly as ``pgpbulk bench`` does.

- ``python -m pytest bench/ --benchmark-enable``: measure at the jobs' full sizes (``--bench-quick``:
  their ``--quick`` sizes and repeats) and print the same ratio table as ``pgpbulk bench`` at the end
  (``--bench-json FILE`` writes the same JSON document). pytest-benchmark's own table shows seconds
  per pass over the job's data: its timer is :func:`virtual_clock`, which advances by the seconds
  ``measure`` reports (a peer run over a larger file reports its time scaled to the job's data).
- Benchmarks disabled (the pyproject default): every case runs once on tiny data, a smoke test that
  each implementation still works; nothing is printed.

Missing peers are skipped with the reason and listed as missing in the table; with
``PGPBULK_REQUIRE_PEERS=1`` a missing peer program fails, with ``PGPBULK_REQUIRE_NATIVE=1`` missing
native kernels fail (as in ``tests/``).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import pytest

from engine.bench import peers, registry, report, runner, schema
from engine.bench.machine import machine_info, peer_versions
from engine.bench.registry import Dataset, Impl, Job
from engine.bench.timing import FULL, QUICK, summarize, timed_call

SMOKE_SCALE = 0.002  # benchmarks disabled: 1 MiB jobs become 2 KiB
REQUIRE_PEERS = bool(os.environ.get("PGPBULK_REQUIRE_PEERS"))
REQUIRE_NATIVE = bool(os.environ.get("PGPBULK_REQUIRE_NATIVE"))

_clock = [0.0]


def virtual_clock() -> float:
    """pytest-benchmark's timer for the generated cases: the sum of the seconds ``measure`` reported."""
    return _clock[0]


@dataclass(frozen=True)
class Case:
    """One implementation of one job."""

    job: Job
    impl: Impl


@dataclass
class Settings:
    """How this session measures: enabled or smoke, quick sizes, scale, seed."""

    enabled: bool
    quick: bool
    scale: float
    seed: int = registry.DEFAULT_SEED


_rows: dict[str, dict[str, dict[str, Any]]] = {}  # job -> impl -> result row
_sizes: dict[str, int] = {}
_data: dict[str, Dataset] = {}  # the current job's data only (64 MiB jobs must not pile up)
_started = time.perf_counter()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgpbulk bench")
    group.addoption("--bench-quick", action="store_true", help="the jobs' --quick sizes and repeats")
    group.addoption("--bench-json", metavar="FILE", help="write the pgpbulk bench JSON document")


def settings(config: pytest.Config, enabled: bool = True) -> Settings:
    """The session's settings (benchmarks disabled: quick sizes times :data:`SMOKE_SCALE`)."""
    quick = bool(config.getoption("bench_quick")) or bool(os.environ.get("PGPBULK_BENCH_QUICK"))
    return Settings(enabled, quick or not enabled, 1.0 if enabled else SMOKE_SCALE)


def cases(family: str) -> list[Case]:
    """Every (job, implementation) of ``family`` ("other": jobs of families without a file)."""
    jobs = registry.discover().values()
    if family == "other":
        chosen = [job for job in jobs if registry.family(job) not in registry.FAMILIES]
    else:
        chosen = [job for job in jobs if registry.family(job) == family]
    return [Case(job, impl) for job in chosen for impl in job.impls]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_case" not in metafunc.fixturenames:
        return
    family = metafunc.module.FAMILY
    params = [
        pytest.param(
            case,
            id=f"{case.job.name}/{case.impl.name}",
            marks=pytest.mark.benchmark(group=case.job.name, timer=virtual_clock),
        )
        for case in cases(family)
    ]
    metafunc.parametrize("bench_case", params)


def _dataset(job: Job, s: Settings) -> Dataset:
    if job.name not in _data:
        _data.clear()
        _data[job.name] = runner.prepare(job, s.quick, s.seed, s.scale)
    return _data[job.name]


def _record(job: Job, size: int | None, row: dict[str, Any]) -> None:
    _rows.setdefault(job.name, {})[row["impl"]] = row
    if size is not None:
        _sizes[job.name] = size


def _skip_unavailable(case: Case, s: Settings) -> None:
    row = runner.unavailable(case.impl, s.quick and s.enabled)  # the smoke run tries every one
    if row is None:
        return
    if s.enabled:
        _record(case.job, None, row)
    needs_tool = any(req.kind == "tool" and req.problem() for req in case.impl.requires)
    if row["status"] == "missing" and (
        (REQUIRE_PEERS and needs_tool) or (REQUIRE_NATIVE and case.impl.role == "us")
    ):
        pytest.fail(f"{case.impl.name}: {row['reason']} (required in CI)")
    pytest.skip(f"{case.impl.name}: {row['reason']}")


def run_case(benchmark: Any, case: Case, config: pytest.Config) -> None:
    """Measure one case through ``benchmark.pedantic`` (or run it once when benchmarks are disabled)."""
    s = settings(config, enabled=not benchmark.disabled)
    _skip_unavailable(case, s)
    job, impl = case.job, case.impl
    data = _dataset(job, s)
    if not s.enabled:
        benchmark.pedantic(impl.measure, args=(data,), rounds=1, iterations=1)
        return
    samples = []

    def one() -> None:
        sample = timed_call(impl.measure, data)
        samples.append(sample)
        _clock[0] += sample.seconds

    budget = QUICK if s.quick else FULL
    try:
        warm = timed_call(impl.measure, data)  # warm-up; calibrates in-process loops
        rounds = max(budget.min_runs, min(budget.repeat, int(budget.seconds / max(warm.wall, 1e-9))))
        benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=0)
    except Exception as exc:
        _record(job, data.size, runner.failed(impl, exc))
        raise
    row = runner.measured(job, impl, data.size, summarize(samples))
    _record(job, data.size, row)
    benchmark.extra_info.update(
        job=job.name, impl=impl.name, role=impl.role, unit=job.unit, throughput=row["throughput"]
    )


@pytest.fixture
def bench_run(benchmark: Any, request: pytest.FixtureRequest) -> Any:
    """``bench_run(case)``: measure ``case`` with this test's ``benchmark`` fixture."""
    return lambda case: run_case(benchmark, case, request.config)


def document(config: pytest.Config) -> dict[str, Any]:
    """The ``pgpbulk bench`` document of what this session measured."""
    s = settings(config)
    jobs = [job for name, job in registry.discover().items() if name in _rows]
    entries = [
        runner.entry(
            job, _sizes.get(job.name) or runner.data_size(job, s.quick), list(_rows[job.name].values())
        )
        for job in jobs
    ]
    import engine

    return {
        "schema": schema.NAME,
        "version": schema.VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pgpbulk": engine.__version__,
        "quick": s.quick,
        "seed": s.seed,
        "seconds": round(time.perf_counter() - _started, 2),
        "machine": machine_info(),
        "peers": peer_versions(jobs),
        "jobs": entries,
        "scaling": [],
        "load_errors": dict(registry.LOAD_ERRORS),
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    peers.stop_agents()  # the home itself is removed at exit
    _data.clear()


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _rows:  # benchmarks disabled (smoke run): nothing was recorded
        return
    doc = document(config)
    terminalreporter.section("pgpbulk bench: throughput and ratios (same table as pgpbulk bench)")
    for line in report.render(doc).splitlines():
        terminalreporter.write_line(line)
    path = config.getoption("bench_json")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        terminalreporter.write_line(f"JSON written to {path}")
