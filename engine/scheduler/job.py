"""Run a job through the pool into a sink, journaling every batch, stopping cleanly on Ctrl-C.

:func:`run_journaled` is the loop every bulk job shares: start or resume from the journal, rewind the sink,
skip the finished input, run the rest through :func:`~engine.scheduler.pool.run_batches`, and for each
batch write, fsync, commit. The fsyncs and the journal commit of a batch run in a helper thread while the
loop awaits the next batch (see :class:`_Committer`), so the disk's latency does not hold up the workers;
the loop waits for that commit before it writes the next batch, so every commit is still one batch
boundary and the journal never claims more than the sink made durable. A sink that can take batches
while its checkpoint runs (``prepare_checkpoint``/``finish_checkpoint``, e.g. an mbox whose batches wait
in worker shard files) is not waited for: while one commit runs, further batches are written and the
next commit takes them all (still at a batch boundary), so a slow disk means fewer commits, not idle
workers. A first Ctrl-C starts no new batch, lets the running ones finish and be
written and committed, then stops (:class:`Interrupted`, whose message says how to resume); a second
one stops at once, which is still safe (the journal never claims more than the sink made durable).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.errors import PgpBulkError
from engine.scheduler.journal import START, Journal, Position, params_digest
from engine.scheduler.pool import Batch, Failed, WorkerCrashed, run_batches
from engine.scheduler.progress import Progress
from engine.scheduler.report import RunReport
from engine.scheduler.sink import ResumableSink

log = logging.getLogger(__name__)

RESUME_HINT = "run the same command again with --resume to continue"
_END = object()


class Interrupted(PgpBulkError):
    """The run was stopped (Ctrl-C); the journal is consistent and the run can be resumed."""

    def __init__(self, position: Position, journal: Path) -> None:
        self.position = position
        self.journal = journal
        super().__init__(
            f"interrupted: {position.items} items done and journaled in {journal}; {RESUME_HINT}"
        )


class Stopped(PgpBulkError):
    """A result said the run cannot go on (``stop_on``: a wrong PIN, a card gone); the batch holding it
    was not written, the journal is consistent and the run can be resumed once the cause is fixed."""

    def __init__(self, reason: str, kind: str, position: Position, journal: Path) -> None:
        self.reason, self.kind, self.position, self.journal = reason, kind, position, journal
        super().__init__(
            f"{reason}; stopped: {position.items} items done and journaled in {journal}; {RESUME_HINT}"
        )


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[threading.Event]:
    """First SIGINT sets the event (finish the running batches, then stop); the second raises at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("stopping after the batches in progress (Ctrl-C again to stop at once)")

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old)


class _Committer:
    """Makes one batch durable off the main thread: ``sink.checkpoint()`` (fsyncs), then the journal's
    commit, in that order, in one helper thread, while the main thread awaits the next batch's results.

    The journal's guarantee is unchanged (it never claims more than the sink made durable, and every
    commit is still one batch boundary); the caller waits (:meth:`wait`) before touching the sink again,
    so a sink is never used by two threads at once. fsync releases the GIL, so the disk's latency no
    longer stalls the loop that feeds the workers."""

    def __init__(self, sink: ResumableSink, journal: Journal) -> None:
        self.sink, self.journal = sink, journal
        self.running: Future[Position] | None = None
        self.overlapping = False
        self._thread: ThreadPoolExecutor | None = None

    def _commit(self, batch: Batch[Any], snapshot: Any) -> Position:
        if snapshot is None:
            offset, digest = self.sink.checkpoint()
        else:
            offset, digest = self.sink.finish_checkpoint(snapshot)  # type: ignore[attr-defined]
        new = Position(batch.end, offset, digest, batch.index)
        self.journal.commit(new)
        return new

    def start(self, batch: Batch[Any]) -> None:
        """Commit up to ``batch`` (the last one written). A sink with ``prepare_checkpoint`` may hand
        back a snapshot of what it was given so far (or None): it then keeps taking batches while the
        snapshot is made durable (:attr:`overlapping`), and commits coalesce when the disk is slower
        than the workers; without one the caller waits for the commit before writing again."""
        if self._thread is None:  # one thread for the run: starting one per commit costs more than it
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="pgpbulk-commit")
        prepare = getattr(self.sink, "prepare_checkpoint", None)
        snapshot = prepare() if prepare is not None else None
        self.overlapping = snapshot is not None
        self.running = self._thread.submit(self._commit, batch, snapshot)

    def wait(self) -> Position:
        if self.running is None:
            raise RuntimeError("no commit in flight")
        try:
            return self.running.result()  # a Ctrl-C here leaves it running: the caller's cleanup waits
        finally:
            if self.running.done():
                self.running = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


def _outcomes(results: Sequence[Any]) -> Sequence[str] | None:
    """The outcomes a packed batch carries (see :func:`run_journaled`); None for a list."""
    return None if type(results) is list else getattr(results, "outcomes", None)


def _default_outcome(result: Any) -> str:
    return "failed" if isinstance(result, Failed) else "done"


def run_journaled(
    source: Iterable[Any] | Callable[[int], Iterable[Any]],
    fn: Callable[..., Any],
    sink: ResumableSink,
    journal: Journal,
    params: Mapping[str, Any] | str,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    report: RunReport | None = None,
    outcome: Callable[[Any], str] = _default_outcome,
    stop_on: Callable[[Any], tuple[str, str] | None] | None = None,
    checkpoint_every: float = 0.0,
    **pool_options: Any,
) -> Position:
    """Run ``fn`` over ``source`` into ``sink``; return the final position.

    ``source`` is the whole input, or a function ``skip -> iterable`` starting at item ``skip`` (for
    sources that can seek). ``params`` (or its :func:`params_digest`) must change whenever the output
    would; a resume with other params is refused. ``outcome`` names each result for ``report``;
    ``pool_options`` go to :func:`run_batches` (workers, batch_size, executor, initializer, ...).
    ``stop_on(result)`` returns ``(reason, kind)`` for a result that must end the run: the batch holding
    it is not written, and :class:`Stopped` is raised. ``checkpoint_every`` (seconds; 0: after every
    batch) lets batches be written and committed together once that much time passed since the last
    commit, and always at the end or a stop: each commit costs three fsyncs (a few ms), which at
    thousands of items a second would otherwise dominate; a crash redoes at most that much work.
    A finished journal on resume leaves the output alone. Raises :class:`Interrupted` on Ctrl-C and
    :class:`WorkerCrashed` (message says how to resume) when a worker dies.

    Results that the pool's ``pack`` made into a sequence with an ``outcomes`` attribute are taken at
    their word: ``outcomes`` name each item as ``outcome`` would, and no item stops the run (``stop_on``
    is not asked), so neither walks the items one by one.
    """
    digest = params if isinstance(params, str) else params_digest(params)
    start = journal.begin(digest, resume=resume)
    if journal.finished:
        journal.close()
        log.info("%s: the run had already finished; nothing to do", journal.path)
        return start
    try:
        sink.rewind(start)
        if start is not START:
            log.info("resuming after item %d (output offset %d)", start.items, start.offset)
        items = iter(source(start.items) if callable(source) else itertools.islice(source, start.items, None))
        if progress is not None:
            progress.begin(start.items)
        position = start
        committer = _Committer(sink, journal)
        with (
            graceful_interrupt() as stop,
            contextlib.closing(
                run_batches(
                    items, fn, start_index=start.items, start_batch=start.batch + 1, stop=stop, **pool_options
                )
            ) as batches,
        ):
            written: Batch[Any] | None = None  # the last batch written and not yet committed
            due = time.monotonic() + checkpoint_every

            def settle(*, quiet: bool = False) -> None:
                """Wait for the commit in flight (the sink is never used by two threads at once)."""
                nonlocal position
                if committer.running is None:
                    return
                try:
                    new = committer.wait()
                except BaseException:
                    if quiet:
                        return
                    raise
                if report is not None:
                    report.add_bytes(0, new.offset - position.offset)
                position = new

            def commit(*, wait: bool = True) -> None:
                nonlocal written, due
                running = committer.running
                if not wait and committer.overlapping and running is not None and not running.done():
                    return  # still busy: the next commit takes this batch too
                settle()
                if written is None:
                    return
                committer.start(written)
                written, due = None, time.monotonic() + checkpoint_every
                if wait:
                    settle()

            try:
                for batch in batches:
                    if not committer.overlapping or (committer.running and committer.running.done()):
                        settle()  # a plain sink is not written while its checkpoint runs
                    known = _outcomes(batch.results)
                    if stop_on is not None and known is None:
                        for result in batch.results:
                            if (cause := stop_on(result)) is not None:
                                commit()
                                raise Stopped(*cause, position, journal.path)
                    sink.write_batch(batch.results)
                    written = batch
                    if report is not None:
                        report.add_all(map(outcome, batch.results) if known is None else known)
                        report.add_bytes(batch.nbytes, 0)
                    if time.monotonic() >= due:
                        commit(wait=False)  # fsyncs while the next batch is awaited
                    if progress is not None:
                        progress.update(len(batch.results), batch.nbytes)
                commit()
            finally:
                settle(quiet=True)  # an exception is on its way: let the commit in flight land first
                committer.close()
            # A stop leaves input unread (the peeked item is read again on resume).
            if stop.is_set() and next(items, _END) is not _END:
                raise Interrupted(position, journal.path)
        journal.finish()
    except KeyboardInterrupt:
        raise Interrupted(journal.last() or START, journal.path) from None
    except WorkerCrashed as exc:
        done = (journal.last() or START).items
        hint = f"{done} items are journaled in {journal.path}; {RESUME_HINT}"
        raise WorkerCrashed(exc.next_index, hint) from exc
    finally:
        if report is not None:
            report.stop()
        if progress is not None:
            progress.close()
        journal.close()
    return position
