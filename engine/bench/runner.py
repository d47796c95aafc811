"""Run bench jobs and build the result document (layout in :mod:`engine.bench.schema`)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.bench import peers, registry, schema
from engine.bench.registry import Dataset, Impl, Job
from engine.bench.timing import FULL, QUICK, Budget, sample

Progress = Callable[[str], None]

# /proc/cpuinfo flag names of the features the kernels can use.
CPU_FLAGS = {"avx2": "avx2", "pclmul": "pclmulqdq", "sha_ni": "sha_ni"}


def cpu_info() -> tuple[str, dict[str, bool]]:
    """CPU model name and which of AVX2, PCLMUL, SHA-NI ``/proc/cpuinfo`` reports (all False elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, {name: flag in flags for name, flag in CPU_FLAGS.items()}


def kernel_features() -> dict[str, dict[str, Any]]:
    """``features()`` of every kernel implementation that can be loaded, keyed "armor/native" etc."""
    from engine import _native

    found: dict[str, dict[str, Any]] = {}
    for name in _native.KERNELS:
        try:
            impls = _native.implementations(name)
        except ImportError as exc:
            found[name] = {"error": str(exc)}
            continue
        for impl, mod in impls.items():
            features = getattr(mod, "features", None)
            found[f"{name}/{impl}"] = dict(features()) if callable(features) else {}
    return found


def machine_info() -> dict[str, Any]:
    """Platform, CPU flags, kernel features and the native/pure choice in use."""
    from engine import _native

    model, flags = cpu_info()
    try:
        kernels = _native.describe()
    except ImportError:
        kernels = {}
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cores": os.cpu_count() or 1,
        "cpu_flags": flags,
        "kernel_features": kernel_features(),
        "kernels": kernels,
        "native_built": peers.NATIVE.problem() is None,
        "forced_pure": bool(os.environ.get("ENGINE_NO_EXTENSIONS")),
    }


def peer_versions(jobs: Sequence[Job]) -> dict[str, str | None]:
    """Version (or ``None`` = missing) of every tool and module the selected jobs' peers need."""
    versions: dict[str, str | None] = {}
    for job in jobs:
        for impl in job.impls:
            for req in impl.requires:
                if req.kind in ("tool", "module"):
                    versions[req.name] = req.version()
    return versions


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


def measure_impl(job: Job, impl: Impl, data: Dataset, quick: bool, budget: Budget) -> dict[str, Any]:
    """One result row: measured, or missing / skipped / failed with the reason."""
    reason = impl.missing_reason()
    if reason:
        return _result(impl, "missing", reason)
    if quick and not impl.quick:
        return _result(impl, "skipped", "not run with --quick")
    try:
        timing = sample(impl.measure, data, budget)
    except Exception as exc:  # a peer that crashes is reported, not fatal
        return _result(impl, "failed", f"{type(exc).__name__}: {exc}")
    return _result(
        impl,
        "ok",
        throughput=_sig(_throughput(job, timing.best, data.size)),
        best_s=timing.best,
        cpu_s=timing.cpu,
        median_s=timing.median,
        runs=timing.runs,
        cpu_share=timing.cpu_share,
    )


def _cpu_ratio(ref: dict[str, Any], other: dict[str, Any]) -> float | None:
    if not ref.get("cpu_s") or not other.get("cpu_s"):
        return None
    return _sig(other["cpu_s"] / ref["cpu_s"], 5)


def ratios(reference: str | None, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``throughput(reference) / throughput(other)`` (wall clock, ``value``) and the same ratio of CPU
    seconds (``cpu``) for every other measured implementation."""
    by_name = {r["impl"]: r for r in results if r["status"] == "ok" and r["throughput"]}
    ref = by_name.get(reference) if reference else None
    if ref is None:
        return []
    return [
        {
            "of": reference,
            "to": name,
            "value": _sig(ref["throughput"] / r["throughput"], 5),
            "cpu": _cpu_ratio(ref, r),
            "gated": r["gated"],
        }
        for name, r in by_name.items()
        if name != reference
    ]


def _scaled(size: int, scale: float) -> int:
    return max(1, int(size * scale))


def run_job(
    job: Job, quick: bool, seed: int, progress: Progress, scale: float = 1.0
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Measure every implementation of ``job``; returns its JSON entry and its scaling entry (or None).

    ``scale`` shrinks every size (tests use tiny data); jobs read it as ``data.params["scale"]``.
    """
    budget = QUICK if quick else FULL
    size = _scaled(job.quick_size if quick else job.size, scale)
    data = job.data.dataset(size, seed)
    data.params.update(quick=quick, scale=scale)
    results = []
    for impl in job.impls:
        progress(f"{job.name}: {impl.name}")
        results.append(measure_impl(job, impl, data, quick, budget))
    ref = job.reference()
    entry = {
        "name": job.name,
        "unit": job.unit,
        "size": size,
        "description": job.description,
        "reference": ref.name if ref else None,
        "results": results,
        "ratios": ratios(ref.name if ref else None, results),
    }
    return entry, _sweep(job, data, quick, progress, scale)


def _sweep(job: Job, data: Dataset, quick: bool, progress: Progress, scale: float) -> dict[str, Any] | None:
    sweep = job.sweep
    if sweep is None:
        return None
    budget = Budget(repeat=3, warmup=1, min_runs=1, seconds=0.2 if quick else 1.0, min_sample=0.005)
    points = []
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
            progress(f"{job.name}: {name} at {sweep.param}={x}")
            row = measure_impl(job, impl, point_data, quick, budget)
            if row["status"] == "ok":
                points.append({"impl": name, "x": x, "throughput": row["throughput"]})
    return {"job": job.name, "param": sweep.param, "label": sweep.label, "unit": job.unit, "points": points}


def run(
    jobs: Sequence[Job],
    quick: bool = False,
    seed: int = registry.DEFAULT_SEED,
    progress: Progress | None = None,
    scale: float = 1.0,
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
        for job in jobs:
            entry, sweep = run_job(job, quick, seed, say, scale)
            entries.append(entry)
            if sweep is not None:
                scaling.append(sweep)
    finally:
        peers.cleanup()
    return {
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
