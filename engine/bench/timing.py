"""Timers for ``pgpbulk bench``: warm up, repeat, keep the best and the median.

**Wall versus CPU time.** Throughput is computed from *wall-clock* time (``time.perf_counter``): it is
what a user waits for, and it is the only clock that covers a peer running in a child process. On a
shared 2-core machine other processes only ever *add* wall time, so the best (minimum) of several
samples is the least disturbed estimate and is what ratios use; the median is recorded to show the
spread. Each sample also records CPU time (``time.process_time`` plus children's user+system time from
``resource.getrusage``); ``cpu_share = cpu / wall`` near 1 means a sample ran undisturbed on one core,
well below 1 means it waited (contention, I/O), above 1 means it used several cores.

**Peers in a subprocess** pay for process start-up (gpg: a few ms) on every run. :func:`run_process`
amortizes it by feeding one large input file once and scaling the time to the job's data size, so a
ratio compares steady-state throughput, not ``exec`` cost.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Seconds for one pass over a job's data: ``best`` wall (used for ratios), ``median`` wall,
    ``cpu`` (CPU seconds of the pass, least over the samples), sample count and CPU share."""

    best: float
    median: float
    cpu: float
    runs: int
    cpu_share: float


@dataclass(frozen=True)
class Budget:
    """How hard to try: at most ``repeat`` samples after ``warmup`` calls, stopping early once the
    samples took ``seconds`` in total (never fewer than ``min_runs``); in-process calls are looped
    until one sample lasts at least ``min_sample`` seconds (timeit's autorange)."""

    repeat: int = 7
    warmup: int = 1
    min_runs: int = 3
    seconds: float = 3.0
    min_sample: float = 0.02


FULL = Budget()
QUICK = Budget(repeat=3, warmup=1, min_runs=1, seconds=0.6, min_sample=0.005)


def _cpu_now() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class Sample:
    """One call of ``measure``: the ``seconds`` it reported for one pass over the data, the wall
    time the call really took and the CPU seconds it used (children included)."""

    seconds: float
    wall: float
    cpu_used: float

    @property
    def cpu(self) -> float | None:
        """CPU seconds per pass, scaled like ``seconds`` (a peer run over a larger file and scaled
        down reports scaled seconds; its CPU time is scaled the same way)."""
        return self.cpu_used * self.seconds / self.wall if self.wall > 0 else None


def timed_call(measure: Callable[[T], float], data: T) -> Sample:
    """Call ``measure(data) -> seconds`` once, with its wall and CPU time."""
    cpu0, wall0 = _cpu_now(), time.perf_counter()
    seconds = measure(data)
    return Sample(seconds, time.perf_counter() - wall0, _cpu_now() - cpu0)


def summarize(samples: Sequence[Sample]) -> Timing:
    """Best and median reported seconds, least CPU seconds per pass, and the CPU share of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    seconds = [s.seconds for s in samples]
    cpus = [c for c in (s.cpu for s in samples) if c is not None]
    wall = sum(s.wall for s in samples)
    share = round(sum(s.cpu_used for s in samples) / wall, 3) if wall > 0 else 0.0
    return Timing(min(seconds), statistics.median(seconds), min(cpus) if cpus else 0.0, len(seconds), share)


def sample(measure: Callable[[T], float], data: T, budget: Budget, deadline: float | None = None) -> Timing:
    """Call ``measure(data) -> seconds`` with warm-up and repeats; return best and median seconds.

    A warm-up call that alone used up the time budget counts as a sample (slow twins are not run
    twice for nothing); its caches are as warm as they will get. ``deadline`` (a ``perf_counter``
    value, the job's quick budget) stops the repeats early; one sample is always taken.
    """
    samples: list[Sample] = []

    def spent() -> float:
        return sum(s.wall for s in samples)

    def late() -> bool:
        return deadline is not None and time.perf_counter() >= deadline

    for _ in range(budget.warmup):
        warm = timed_call(measure, data)
        if warm.wall >= budget.seconds or late():
            samples.append(warm)
            break
    while not samples or (
        len(samples) < budget.repeat
        and not (len(samples) >= budget.min_runs and spent() >= budget.seconds)
        and not late()
    ):
        samples.append(timed_call(measure, data))
    return summarize(samples)


def in_process(fn: Callable[[T], Any], min_sample: float = QUICK.min_sample) -> Callable[[T], float]:
    """Turn ``fn(data)`` into ``measure(data) -> seconds per call``.

    The first call on a given argument calibrates a loop count so that one sample lasts at least
    ``min_sample`` seconds (timeit's autorange); short calls (microseconds) are then timed in a loop.
    The count is kept per argument (identity and length), so a size sweep recalibrates.
    """
    numbers: dict[tuple[int, int], int] = {}

    def loop(data: T, number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            fn(data)
        return time.perf_counter() - start

    def measure(data: T) -> float:
        key = (id(data), len(data) if hasattr(data, "__len__") else -1)  # type: ignore[arg-type]
        number = numbers.get(key)
        if number is not None:
            return loop(data, number) / number
        number = 1
        while True:
            elapsed = loop(data, number)
            if elapsed >= min_sample or number >= 1 << 20:
                numbers[key] = number
                return elapsed / number
            number *= 2 if elapsed * 10 >= min_sample else 10

    return measure


def run_process(
    argv: Sequence[str],
    stdin: Path,
    scale: float = 1.0,
    env: Mapping[str, str] | None = None,
) -> float:
    """Wall seconds of one run of ``argv`` reading ``stdin`` (a file), output to ``/dev/null``, times
    ``scale`` (the job's work divided by the work in the file).

    Raises ``RuntimeError`` with the peer's stderr when it fails, so a broken peer is reported as
    failed rather than timed as fast.
    """
    with open(stdin, "rb") as src:
        start = time.perf_counter()
        proc = subprocess.run(
            list(argv),
            stdin=src,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            check=False,
        )
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {err[-1] if err else 'no message'}")
    return elapsed * scale
