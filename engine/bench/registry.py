"""The job registry of ``pgpbulk bench``.

A **job** is one thing we measure (``armor``, ``wkd-hash``, later ``encrypt``, ``rewrap`` ...): a unit
(``MB/s`` of binary data or ``items/s``), a data generator (deterministic from a seed, cached on disk),
and a list of **implementations**: ours (native kernels), the pure-Python twin, and peers (gpg, sq,
pybase64, hashlib ...) or a machine bound (fresh allocation). Each implementation has ``available()``
and ``measure(data) -> seconds`` for one pass over the data.

**Adding a job is one module**: create ``engine/bench/jobs_NAME.py`` with ``def jobs() -> list[Job]``;
it is discovered automatically. Import heavy or not-yet-written parts of the engine inside the
``measure`` functions, so a job module always imports; a module that fails to import is reported,
not fatal.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.bench.peers import Requirement

UNITS = ("MB/s", "items/s")
ROLES = ("us", "twin", "peer", "bound")
DEFAULT_SEED = 20261128
# ``--quick``: every job's own time budget (data generation, all implementations, its sweep) unless
# it sets ``quick_budget``, and the budget of the whole run; see :mod:`engine.bench.runner`.
DEFAULT_QUICK_BUDGET = 5.0
RUN_QUICK_BUDGET = 50.0  # leaves time for start-up, the chart and the gate under 60 s
# The job families of the pytest-benchmark suite (one ``bench/test_bench_FAMILY.py`` each).
FAMILIES = ("armor", "wkd-hash", "wkd-build", "encrypt", "decrypt", "rewrap", "archive", "card")
# A job's family when it names none and its name does not start with one: by its module.
MODULE_FAMILIES = {"jobs_wkd_build": "wkd-build", "jobs_mail": "archive", "jobs_card": "card"}


def cache_dir() -> Path:
    """Where generated data is kept: ``$PGPBULK_BENCH_CACHE`` or ``~/.cache/pgpbulk/bench``."""
    env = os.environ.get("PGPBULK_BENCH_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "pgpbulk" / "bench"
    base.mkdir(parents=True, exist_ok=True)
    return base


def warm_page_cache(path: Path, chunk: int = 8 << 20) -> None:
    """Read ``path`` once, untimed, so that a timed run starts from the page cache, as the peers do (the
    gpg loop's messages are in memory; sq reads a keyring our build has just read): otherwise a run
    after ``drop_caches`` or another job's big writes times the disk's read speed."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(chunk)
        while f.readinto(buf):
            pass


def _identity(raw: bytes) -> bytes:
    return raw


@dataclass(frozen=True)
class DataSpec:
    """How to make a job's input: ``generate(size, seed) -> bytes`` (deterministic), ``load(raw)``
    turns the cached bytes into the value the implementations take. Bump ``version`` whenever the
    generator's output changes, so stale cache files are not reused."""

    name: str
    generate: Callable[[int, int], bytes]
    load: Callable[[bytes], Any] = _identity
    version: int = 1

    def path(self, size: int, seed: int) -> Path:
        """The cache file of this spec at ``size`` and ``seed``."""
        return cache_dir() / f"{self.name}-{size}-s{seed}-v{self.version}.bin"

    def materialize(self, size: int, seed: int) -> Path:
        """Generate (once) and return the cache file; written atomically."""
        path = self.path(size, seed)
        if not path.exists():
            tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
            tmp.write_bytes(self.generate(size, seed))
            os.replace(tmp, path)
        return path

    def dataset(self, size: int, seed: int) -> Dataset:
        """Load the data of ``size`` work units (bytes or items) for ``seed``."""
        path = self.materialize(size, seed)
        raw = path.read_bytes()
        return Dataset(spec=self, size=size, seed=seed, raw=raw, path=path, value=self.load(raw))


@dataclass
class Dataset:
    """A job's input: ``value`` for in-process calls, ``path`` (same bytes as ``raw``) for subprocess
    peers, ``size`` in work units (bytes of binary data, or items) and sweep ``params`` (e.g. workers)."""

    spec: DataSpec
    size: int
    seed: int
    raw: bytes
    path: Path
    value: Any
    params: dict[str, Any] = field(default_factory=dict)

    def resized(self, size: int) -> Dataset:
        """The same kind of data at another size (for amortizing a peer's start-up, or a sweep)."""
        other = self.spec.dataset(size, self.seed)
        other.params = dict(self.params)
        return other


@dataclass(frozen=True)
class Impl:
    """One implementation of a job.

    ``role``: "us" (our engine, the reference of every ratio), "twin" (our pure-Python twin), "peer"
    (another program or library) or "bound" (a machine limit such as fresh allocation). ``gated``
    ratios are checked by ``--compare``. ``quick=False`` leaves it out of ``--quick`` runs (recorded as
    skipped). ``note`` says what is special (e.g. "no CRC", "extrapolated from 1/16"); ``details``,
    when given, is asked after the measurement for what the run itself reported (added to the note).
    """

    name: str
    measure: Callable[[Dataset], float]
    role: str = "peer"
    requires: tuple[Requirement, ...] = ()
    gated: bool = False
    quick: bool = True
    note: str = ""
    details: Callable[[], str] | None = None

    def missing_reason(self) -> str | None:
        """Why it cannot run here, or ``None``."""
        for req in self.requires:
            reason = req.problem()
            if reason:
                return reason
        return None

    def available(self) -> bool:
        """True when every requirement is met on this machine."""
        return self.missing_reason() is None


@dataclass(frozen=True)
class Sweep:
    """Measure some implementations at several values of one parameter, for the scaling plot.

    ``param="size"`` regenerates the data at each value (message size, in work units); any other name
    is passed to ``measure`` as ``data.params[param]`` (e.g. ``workers``) on the job's data.
    """

    param: str
    label: str
    values: Sequence[int]
    quick_values: Sequence[int]
    impls: Sequence[str]


@dataclass(frozen=True)
class Job:
    """A benchmark job: see the module docstring. ``size``/``quick_size`` are in work units.

    ``quick_budget``: seconds the job may take with ``--quick`` (its data, every implementation and
    its sweep); the runner stops starting implementations once it is spent and reports the job as
    over budget. ``family``: the ``bench/test_bench_FAMILY.py`` file that runs it under pytest
    (default: see :func:`family`). ``parallel``: it runs on several cores (a process pool, several
    peer processes at once), so its ratios carry no CPU figure and the gate compares wall clock."""

    name: str
    unit: str
    data: DataSpec
    size: int
    quick_size: int
    impls: tuple[Impl, ...]
    description: str = ""
    sweep: Sweep | None = None
    quick_budget: float = DEFAULT_QUICK_BUDGET
    family: str = ""
    parallel: bool = False

    def __post_init__(self) -> None:
        if not self.quick_budget > 0:
            raise ValueError(f"job {self.name}: quick_budget must be positive")
        if self.unit not in UNITS:
            raise ValueError(f"job {self.name}: unit must be one of {UNITS}")
        for impl in self.impls:
            if impl.role not in ROLES:
                raise ValueError(f"job {self.name}: impl {impl.name}: role must be one of {ROLES}")
        names = [impl.name for impl in self.impls]
        if len(set(names)) != len(names):
            raise ValueError(f"job {self.name}: duplicate implementation names")

    def impl(self, name: str) -> Impl:
        """The implementation called ``name``."""
        for impl in self.impls:
            if impl.name == name:
                return impl
        raise KeyError(name)

    def reference(self) -> Impl | None:
        """The implementation ratios are taken against: the first available "us", else the twin."""
        for role in ("us", "twin"):
            for impl in self.impls:
                if impl.role == role and impl.available():
                    return impl
        return None

    def with_impls(self, *extra: Impl) -> Job:
        """A copy with more implementations (tests use it to add a missing peer)."""
        return replace(self, impls=(*self.impls, *extra))


_loaded: dict[str, Job] | None = None
LOAD_ERRORS: dict[str, str] = {}
SOURCES: dict[str, str] = {}  # job name -> the jobs_*.py module (short name) that defined it


def discover() -> dict[str, Job]:
    """All jobs of the ``engine/bench/jobs_*.py`` modules, by name, in module order."""
    global _loaded
    if _loaded is None:
        import engine.bench as package

        found: dict[str, Job] = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("jobs_"):
                continue
            modname = f"{package.__name__}.{info.name}"
            try:
                module = importlib.import_module(modname)
                for job in module.jobs():
                    register(job, found)
                    SOURCES[job.name] = info.name
            except Exception as exc:  # a broken job module must not take the others down
                LOAD_ERRORS[modname] = f"{type(exc).__name__}: {exc}"
        _loaded = found
    return _loaded


def family(job: Job) -> str:
    """The family of ``job``: its ``family`` field; else the longest of :data:`FAMILIES` its name
    equals or starts with (``encrypt-large`` -> ``encrypt``); else by its module
    (:data:`MODULE_FAMILIES`); else ``other``."""
    if job.family:
        return job.family
    hits = [f for f in FAMILIES if job.name == f or job.name.startswith(f"{f}-")]
    if hits:
        return max(hits, key=len)
    return MODULE_FAMILIES.get(SOURCES.get(job.name, ""), "other")


def register(job: Job, into: dict[str, Job] | None = None) -> Job:
    """Add ``job`` to the registry (or to ``into``); names must be unique."""
    target = into if into is not None else discover()
    if job.name in target:
        raise ValueError(f"duplicate bench job name {job.name!r}")
    target[job.name] = job
    return job


def select(patterns: Sequence[str] | None, jobs: dict[str, Job] | None = None) -> list[Job]:
    """Jobs whose names match any of ``patterns`` (exact or shell glob); all jobs when ``None``.

    Raises ``KeyError`` naming a pattern that matches nothing.
    """
    from fnmatch import fnmatchcase

    jobs = discover() if jobs is None else jobs
    if not patterns:
        return list(jobs.values())
    names: list[str] = []
    for pattern in patterns:
        hits = [name for name in jobs if fnmatchcase(name, pattern)]
        if not hits:
            raise KeyError(pattern)
        names.extend(name for name in hits if name not in names)
    return [jobs[name] for name in names]
