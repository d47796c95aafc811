"""Bulk scheduling, independent of mail and OpenPGP: ordered batched process pool, journal, progress.

Jobs hand :func:`run_ordered` (or :func:`run_journaled`, which adds the journal and Ctrl-C handling) an
iterable of work items and a picklable module-level function.

The names below load their module on first use (PEP 562): the command line imports
:mod:`engine.scheduler.start` to start the worker pool's fork server as its first step, and importing
this package must not load the pool, the journal, the job loop and the sinks (some 50 ms) before that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._lazy import lazy_attributes

if TYPE_CHECKING:
    from engine.scheduler.job import Interrupted, Stopped, graceful_interrupt, run_journaled
    from engine.scheduler.journal import START, Journal, Position, ResumeRefused, params_digest
    from engine.scheduler.logs import configure_logging, verbosity_level
    from engine.scheduler.pool import (
        Batch,
        Failed,
        WorkerCrashed,
        WorkerInitError,
        pool_context,
        process_pool,
        run_batches,
        run_ordered,
    )
    from engine.scheduler.progress import Progress
    from engine.scheduler.report import RunReport
    from engine.scheduler.sink import AppendFile, ResumableSink

_WHERE = {
    "Interrupted": "job", "Stopped": "job", "graceful_interrupt": "job", "run_journaled": "job",
    "START": "journal", "Journal": "journal", "Position": "journal", "ResumeRefused": "journal",
    "params_digest": "journal", "configure_logging": "logs", "verbosity_level": "logs",
    "Batch": "pool", "Failed": "pool", "WorkerCrashed": "pool", "WorkerInitError": "pool",
    "pool_context": "pool", "process_pool": "pool", "run_batches": "pool", "run_ordered": "pool",
    "Progress": "progress", "RunReport": "report", "AppendFile": "sink", "ResumableSink": "sink",
}  # fmt: skip


__getattr__ = lazy_attributes(__name__, _WHERE, globals())


__all__ = [
    "START",
    "AppendFile",
    "Batch",
    "Failed",
    "Interrupted",
    "Journal",
    "Position",
    "Progress",
    "ResumableSink",
    "ResumeRefused",
    "RunReport",
    "Stopped",
    "WorkerCrashed",
    "WorkerInitError",
    "configure_logging",
    "graceful_interrupt",
    "params_digest",
    "pool_context",
    "process_pool",
    "run_batches",
    "run_journaled",
    "run_ordered",
    "verbosity_level",
]
