"""Bulk scheduling, independent of mail and OpenPGP: ordered batched process pool, journal, progress.

Jobs hand :func:`run_ordered` (or :func:`run_journaled`, which adds the journal and Ctrl-C handling) an
iterable of work items and a picklable module-level function.
"""

from __future__ import annotations

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
