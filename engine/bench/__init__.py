"""``pgpbulk bench``: throughput of our hot paths against gpg, sq, libraries and our pure twins.

Modules: :mod:`~engine.bench.registry` (jobs, implementations, cached data), :mod:`~engine.bench.timing`
(timers), ``jobs_*.py`` (one module per job family, discovered automatically),
:mod:`~engine.bench.runner` (runs jobs into a document), :mod:`~engine.bench.schema` (the JSON
schema), :mod:`~engine.bench.report` (the table), :mod:`~engine.bench.compare` (the ratio gate),
:mod:`~engine.bench.plot` (charts) and :mod:`~engine.bench.cli` (the command).
"""

from __future__ import annotations

from engine.bench.registry import Dataset, DataSpec, Impl, Job, Sweep, discover, register, select

__all__ = ["DataSpec", "Dataset", "Impl", "Job", "Sweep", "discover", "register", "select"]
