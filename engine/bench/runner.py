"""Run bench jobs and build the result document (layout in :mod:`engine.bench.schema`).

**Quick budgets.** With ``--quick`` every job has a time budget (``Job.quick_budget``: its data, every
implementation and its sweep) and the run as a whole has :data:`~engine.bench.registry.RUN_QUICK_BUDGET`;
when the selected jobs' budgets add up to more, the largest are capped (:func:`budgets`). Our own
implementation runs first, then the gated ones, then the rest; once the budget is spent, the repeats
stop (one sample is always kept) and implementations not yet started are recorded with status "cut",
never dropped. The job entry says how long it took, its budget and whether it went over; the report
and the CLI name every job over budget.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.bench import peers, registry, schema
from engine.bench.machine import machine_info, peer_versions
from engine.bench.registry import Dataset, Impl, Job
from engine.bench.timing import FULL, QUICK, Budget, Timing, sample

Progress = Callable[[str], None]
# A job that only finishes its last sample after the deadline is within budget; one that cut
# something, or ran on 20% past its budget (a single call too long for it), is over.
OVERRUN = 1.2
SWEEP_QUICK = Budget(repeat=3, warmup=1, min_runs=1, seconds=0.2, min_sample=0.005)
SWEEP_FULL = Budget(repeat=3, warmup=1, min_runs=1, seconds=1.0, min_sample=0.005)


def _result(impl: Impl, status: str, reason: str | None = None, **values: Any) -> dict[str, Any]:
    base = {
        "impl": impl.name,
        "role": impl.role,
        "status": status,
        "reason": reason,
        "throughput": None,
        "best_s": None,
        "cpu_s": None,
        "median_s": None,
        "runs": 0,
        "cpu_share": None,
        "gated": impl.gated,
        "note": impl.note,
    }
    base.update(values)
    return base


def _sig(value: float, digits: int = 6) -> float:
    """``value`` rounded to ``digits`` significant digits (keeps the JSON readable)."""
    return float(f"{value:.{digits}g}")


def _throughput(job: Job, seconds: float, size: int) -> float:
    work = size / 1e6 if job.unit == "MB/s" else float(size)
    return work / seconds if seconds > 0 else float("inf")


def unavailable(impl: Impl, quick: bool) -> dict[str, Any] | None:
    """The row of an implementation that will not run here (missing, or left out of --quick)."""
    reason = impl.missing_reason()
    if reason:
        return _result(impl, "missing", reason)
    if quick and not impl.quick:
        return _result(impl, "skipped", "not run with --quick")
    return None


def measured(job: Job, impl: Impl, size: int, timing: Timing) -> dict[str, Any]:
    """The row of a measured implementation (``size`` in the job's work units)."""
    details = impl.details() if impl.details else ""
    return _result(
        impl,
        "ok",
        note="; ".join(filter(None, (impl.note, details))),
        throughput=_sig(_throughput(job, timing.best, size)),
        best_s=timing.best,
        cpu_s=timing.cpu,
        median_s=timing.median,
        runs=timing.runs,
        cpu_share=timing.cpu_share,
    )


def failed(impl: Impl, exc: BaseException) -> dict[str, Any]:
    """The row of an implementation that raised (a crashing peer is reported, not fatal)."""
    return _result(impl, "failed", f"{type(exc).__name__}: {exc}")


def cut(impl: Impl, budget: float) -> dict[str, Any]:
    """The row of an implementation not started because the job's quick budget was spent."""
    return _result(impl, "cut", f"quick budget of {budget:.2g} s spent")


def measure_impl(
    job: Job, impl: Impl, data: Dataset, quick: bool, budget: Budget, deadline: float | None = None
) -> dict[str, Any]:
    """One result row: measured, or missing / skipped / failed with the reason."""
    row = unavailable(impl, quick)
    if row is not None:
        return row
    try:
        timing = sample(impl.measure, data, budget, deadline)
    except Exception as exc:
        return failed(impl, exc)
    return measured(job, impl, data.size, timing)


# A sample that used more than this many cores' worth of CPU ran in parallel: its CPU seconds say
# nothing about the time a user waits, so the ratio has no CPU figure (the gate uses the wall clock).
MULTICORE_SHARE = 1.25


def _cpu_ratio(ref: dict[str, Any], other: dict[str, Any]) -> float | None:
    if not ref.get("cpu_s") or not other.get("cpu_s"):
        return None
    if max(ref.get("cpu_share") or 0, other.get("cpu_share") or 0) > MULTICORE_SHARE:
        return None
    return _sig(other["cpu_s"] / ref["cpu_s"], 5)


def ratios(
    reference: str | None, results: Sequence[dict[str, Any]], parallel: bool = False
) -> list[dict[str, Any]]:
    """``throughput(reference) / throughput(other)`` (wall clock, ``value``) and the same ratio of CPU
    seconds (``cpu``) for every other measured implementation; no CPU ratio for a ``parallel`` job
    or a sample that ran on several cores."""
    by_name = {r["impl"]: r for r in results if r["status"] == "ok" and r["throughput"]}
    ref = by_name.get(reference) if reference else None
    if ref is None:
        return []
    return [
        {
            "of": reference,
            "to": name,
            "value": _sig(ref["throughput"] / r["throughput"], 5),
            "cpu": None if parallel else _cpu_ratio(ref, r),
            "gated": r["gated"],
        }
        for name, r in by_name.items()
        if name != reference
    ]


def _scaled(size: int, scale: float) -> int:
    return max(1, int(size * scale))


def data_size(job: Job, quick: bool, scale: float = 1.0) -> int:
    """The job's size in work units: its (quick) size times ``scale``."""
    return _scaled(job.quick_size if quick else job.size, scale)


def prepare(job: Job, quick: bool, seed: int, scale: float = 1.0) -> Dataset:
    """The job's data at :func:`data_size`; jobs read ``quick`` and ``scale`` from its params."""
    data = job.data.dataset(data_size(job, quick, scale), seed)
    data.params.update(quick=quick, scale=scale)
    return data


def run_order(job: Job) -> list[Impl]:
    """Our own implementation first, then the gated ones, then the rest (declared order within)."""
    rank = {"us": 0}
    return sorted(job.impls, key=lambda impl: rank.get(impl.role, 1 if impl.gated else 2))


def entry(job: Job, size: int, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The job's JSON entry from its result rows (in the job's declared order)."""
    order = {impl.name: i for i, impl in enumerate(job.impls)}
    results = sorted(results, key=lambda r: order.get(r["impl"], len(order)))
    ref = job.reference()
    return {
        "name": job.name,
        "unit": job.unit,
        "size": size,
        "description": job.description,
        "reference": ref.name if ref else None,
        "results": results,
        "ratios": ratios(ref.name if ref else None, results, job.parallel),
    }


def run_job(
    job: Job,
    quick: bool,
    seed: int,
    progress: Progress,
    scale: float = 1.0,
    budget_s: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Measure every implementation of ``job``; returns its JSON entry and its scaling entry (or None).

    ``scale`` shrinks every size (tests use tiny data). ``budget_s`` (quick runs) is the job's time
    budget: see the module docstring.
    """
    started = time.perf_counter()
    deadline = started + budget_s if budget_s is not None else None
    data = prepare(job, quick, seed, scale)
    results = []
    for impl in run_order(job):
        if deadline is not None and time.perf_counter() >= deadline and impl.role != "us":
            results.append(unavailable(impl, quick) or cut(impl, budget_s or 0.0))
            continue
        progress(f"{job.name}: {impl.name}")
        results.append(measure_impl(job, impl, data, quick, QUICK if quick else FULL, deadline))
    doc = entry(job, data.size, results)
    scaling = _sweep(job, data, quick, progress, scale, deadline)
    seconds = time.perf_counter() - started
    doc["seconds"] = round(seconds, 2)
    if budget_s is not None:
        doc["budget_s"] = _sig(budget_s, 3)
        cuts = any(r["status"] == "cut" for r in results) or bool(scaling and scaling["cut"])
        doc["over_budget"] = cuts or seconds > budget_s * OVERRUN
    return doc, scaling


def _sweep(
    job: Job, data: Dataset, quick: bool, progress: Progress, scale: float, deadline: float | None
) -> dict[str, Any] | None:
    sweep = job.sweep
    if sweep is None:
        return None
    points, skipped = [], 0
    for x in sweep.quick_values if quick else sweep.values:
        if sweep.param == "size":
            x = _scaled(x, scale)
            point_data = data.resized(x)
        else:
            point_data = dataclasses.replace(data, params={**data.params, sweep.param: x})
        for name in sweep.impls:
            impl = job.impl(name)
            if not impl.available():
                continue
            if deadline is not None and time.perf_counter() >= deadline:
                skipped += 1
                continue
            progress(f"{job.name}: {name} at {sweep.param}={x}")
            budget = SWEEP_QUICK if quick else SWEEP_FULL
            row = measure_impl(job, impl, point_data, quick, budget, deadline)
            if row["status"] == "ok":
                points.append({"impl": name, "x": x, "throughput": row["throughput"]})
    return {
        "job": job.name,
        "param": sweep.param,
        "label": sweep.label,
        "unit": job.unit,
        "points": points,
        "cut": skipped,
    }


def budgets(jobs: Sequence[Job], run_budget: float = registry.RUN_QUICK_BUDGET) -> list[float]:
    """Quick budgets of ``jobs``: their own while together they fit in ``run_budget``; else the
    largest are capped at one level (max-min fair share), so cheap jobs keep theirs and the jobs
    asking for the most give up time, and no job is starved because an earlier one ran long."""
    asked = [job.quick_budget for job in jobs]
    if sum(asked) <= run_budget:
        return asked
    left, rest, cap = run_budget, len(asked), 0.0
    for value in sorted(asked):
        share = left / rest
        if value > share:
            cap = share
            break
        left, rest = left - value, rest - 1
    return [min(value, cap) for value in asked]


def run(
    jobs: Sequence[Job],
    quick: bool = False,
    seed: int = registry.DEFAULT_SEED,
    progress: Progress | None = None,
    scale: float = 1.0,
    run_budget: float = registry.RUN_QUICK_BUDGET,
) -> dict[str, Any]:
    """Run ``jobs`` and return the result document (see :mod:`engine.bench.schema`)."""
    import engine

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    date = (
        datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )
    entries, scaling = [], []
    try:
        for job, budget in zip(jobs, budgets(jobs, run_budget), strict=True):
            job_entry, sweep = run_job(job, quick, seed, say, scale, budget if quick else None)
            entries.append(job_entry)
            if sweep is not None:
                scaling.append(sweep)
    finally:
        peers.stop_agents()
    doc = {
        "schema": schema.NAME,
        "version": schema.VERSION,
        "date": date,
        "pgpbulk": engine.__version__,
        "quick": quick,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 2),
        "machine": machine_info(),
        "peers": peer_versions(jobs),
        "jobs": entries,
        "scaling": scaling,
        "load_errors": dict(registry.LOAD_ERRORS),
    }
    if quick:
        doc["budget_s"] = run_budget
        doc["budget_asked_s"] = round(sum(job.quick_budget for job in jobs), 2)
    return doc
