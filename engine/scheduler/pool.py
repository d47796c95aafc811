"""Ordered, batched, bounded map of a picklable function over a stream of items.

Items are cut into batches (``batch_size`` items, or fewer once ``batch_bytes`` are reached) and each batch
is one task on an executor, so inter-process traffic is one pickle round trip per batch, not per item.
Results come back in input order. At most ``max_in_flight`` batches are read and not yet handed to the
consumer, so the input is consumed lazily and memory stays flat on any stream length: at any time the
number of items taken from ``items`` minus the number of results yielded is at most
``max_in_flight * batch_size``.

**Start method.** The pool uses ``forkserver`` (``spawn`` where it is missing). ``fork`` copies the
parent with whatever it holds: locks taken by other threads (the log listener, the executor's own
threads), an open PKCS#11 session (PKCS#11: a forked child must call ``C_Initialize`` afresh and must not use
its parent's sessions), a gpg-agent socket shared by several processes. ``forkserver`` forks each worker from a small
clean server, so workers start fast and inherit none of that; workers set up their state in ``initializer``.
Consequence for callers: ``fn``, ``initializer``, ``initargs``, items and results must be picklable, and
``fn``/``initializer`` module-level functions (and a script's main module importable: not stdin).
With a caller's ``executor`` the initializer travels with every batch and runs once per process on
first use, so keep ``initargs`` small there (a key file name, not a keyring).

**Failures.** An exception raised by ``fn`` for one item becomes a :class:`Failed` in that item's place;
the run goes on. With ``batched=True`` (``fn`` maps a list to a list of equal length) a failing batch is
retried item by item to find the culprit. A worker process that dies (segfault, OOM kill, ``os._exit``)
raises :class:`WorkerCrashed` carrying ``next_index``, the first item whose result was not delivered.

**Ctrl-C.** Workers ignore SIGINT; the parent decides (see :mod:`engine.scheduler.job`). Closing the
generator (or an exception in the consumer) cancels batches not started and waits for running ones.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from engine.errors import InvalidArgument, PgpBulkError
from engine.scheduler.logs import install_worker_logging, worker_log_queue
from engine.scheduler.start import START_METHOD_ENV as START_METHOD_ENV  # re-exported: callers' old home
from engine.scheduler.start import _preload, pool_context
from engine.scheduler.start import prestart as prestart

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


class WorkerCrashed(PgpBulkError):
    """A worker process died; results before ``next_index`` were delivered, none after."""

    def __init__(self, next_index: int, detail: str = "") -> None:
        self.next_index = next_index
        msg = f"a worker process died; results were delivered for items before #{next_index}, none after"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class WorkerInitError(PgpBulkError):
    """The per-process ``initializer`` failed (wrong PIN, missing token, ...); the run cannot go on."""


@dataclass(frozen=True)
class Failed:
    """The result slot of an item whose function raised: its input index and the error, as text."""

    index: int
    reason: str
    kind: str = ""


@dataclass(frozen=True)
class Batch(Generic[R]):
    """Results of consecutive items ``start .. start+len(results)-1``, in input order."""

    index: int
    start: int
    results: Sequence[R | Failed] = field(repr=False)  # a list, or what the run's ``pack`` made of it
    nbytes: int = 0

    @property
    def end(self) -> int:
        """Index one past the last item of the batch."""
        return self.start + len(self.results)


@dataclass(frozen=True)
class _Task:
    """What a worker needs to run a batch; ``initializer`` is set only when run lazily (not our pool)."""

    fn: Callable[..., Any]
    batched: bool
    initializer: Callable[..., Any] | None
    initargs: tuple[Any, ...]
    token: str
    pack: Callable[[list[Any]], Sequence[Any]] | None = None


# Per-process state of lazy initialization and of the eager pool initializer.
_init_done: set[str] = set()
_init_lock = threading.Lock()
_init_error: str | None = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _lazy_init(task: _Task) -> None:
    if task.initializer is None or task.token in _init_done:
        return
    with _init_lock:
        if task.token in _init_done:
            return
        try:
            task.initializer(*task.initargs)
        except Exception as exc:
            raise WorkerInitError(f"worker initializer failed: {_describe(exc)}") from None
        _init_done.add(task.token)


def _call_one(fn: Callable[[Any], Any], index: int, item: Any) -> Any:
    try:
        return fn(item)
    except Exception as exc:
        return Failed(index, _describe(exc), type(exc).__name__)


def _run_batch(task: _Task, start: int, items: Sequence[Any]) -> Sequence[Any]:
    """Worker side: run ``task.fn`` on a batch; per-item exceptions become :class:`Failed`; the results
    go through ``task.pack`` (when given) before they are sent back, as they are if it fails."""
    results = _results(task, start, items)
    if task.pack is None:
        return results
    try:
        return task.pack(results)
    except Exception:  # a packing bug must not cost the batch: the list travels as it is
        log.debug("pack failed; the results travel unpacked", exc_info=True)
        return results


def _results(task: _Task, start: int, items: Sequence[Any]) -> list[Any]:
    if _init_error is not None:
        raise WorkerInitError(_init_error)
    _lazy_init(task)
    if not task.batched:
        return [_call_one(task.fn, start + i, item) for i, item in enumerate(items)]
    try:
        out = list(task.fn(items))
        if len(out) != len(items):
            raise InvalidArgument(f"batch function returned {len(out)} results for {len(items)} items")
        return out
    except Exception:
        # Find the culprit: run the items one at a time.
        return [_call_one(lambda x: task.fn([x])[0], start + i, item) for i, item in enumerate(items)]


def _bootstrap(
    log_queue: Any, level: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> None:
    """Pool worker initializer: ignore Ctrl-C, log to the parent, run the job's initializer once."""
    global _init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_worker_logging(log_queue, level)
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception as exc:
            _init_error = f"worker initializer failed: {_describe(exc)}"
            log.debug("initializer failed", exc_info=True)


@contextmanager
def process_pool(
    workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers ignore SIGINT and log through the parent's handlers.

    Under ``forkserver`` the initializer's module is imported once in the fork server (before it starts
    on first use), so each worker is forked with it loaded instead of importing it anew.
    """
    ctx = pool_context()
    _preload(ctx, initializer)  # too late (and harmless) once :func:`prestart` started the server
    with worker_log_queue(ctx) as (queue, level):
        pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_bootstrap, initargs=(queue, level, initializer, initargs)
        )
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _default_size(item: Any) -> int:
    return len(item) if isinstance(item, (bytes, bytearray, memoryview, str)) else 0


def _cut(
    items: Iterable[T], start: int, batch_size: int, batch_bytes: int | None, size: Callable[[T], int]
) -> Iterator[tuple[int, Sequence[T], int]]:
    """Lazily cut ``items`` into ``(first index, items, bytes)`` batches. An iterator with a method
    ``cut(batch_size, batch_bytes)`` cuts itself: it yields ``(batch, bytes)`` pairs, each batch a sequence
    of items (one object to pickle, say, not one per item) cut as here with its own sizes, or sooner."""
    it = iter(items)
    index = start
    cut = getattr(it, "cut", None)
    if cut is not None:
        for chunk, nbytes in cut(batch_size, batch_bytes):
            yield index, chunk, nbytes
            index += len(chunk)
        return
    while True:
        chunk: list[T] = []
        nbytes = 0
        for item in it:
            chunk.append(item)
            nbytes += size(item)
            if len(chunk) >= batch_size or (batch_bytes is not None and nbytes >= batch_bytes):
                break
        if not chunk:
            return
        yield index, chunk, nbytes
        index += len(chunk)


def run_batches(
    items: Iterable[T],
    fn: Callable[[T], R] | Callable[[list[T]], Sequence[R]],
    *,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_bytes: int | None = None,
    item_size: Callable[[T], int] | None = None,
    max_in_flight: int | None = None,
    executor: Executor | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    batched: bool = False,
    start_index: int = 0,
    start_batch: int = 0,
    stop: threading.Event | None = None,
    pack: Callable[[list[Any]], Sequence[Any]] | None = None,
) -> Generator[Batch[R], None, None]:
    """Like :func:`run_ordered`, but yield whole :class:`Batch` objects (what a journaled sink commits).

    ``start_index``/``start_batch`` number the first item/batch (a resumed run continues the numbering).
    ``pack`` (picklable, module-level) turns a batch's result list, in the worker, into the sequence
    that travels back as :attr:`Batch.results` (equal items, a cheaper pickle; or the list itself);
    it is not applied in-process (one worker), where nothing travels. An ``items`` iterator that cuts
    itself (see :func:`_cut`) makes the batches, and ``item_size`` is not asked.
    Once ``stop`` is set, no new batch is started: batches not started are cancelled, those already
    running are still yielded (in order), then the iteration ends with the input not exhausted.
    """
    n = (os.cpu_count() or 1) if workers is None else workers
    if n < 0 or batch_size < 1 or (batch_bytes is not None and batch_bytes < 1):
        raise InvalidArgument("workers must be >= 0, batch_size and batch_bytes >= 1")
    inline = executor is None and n <= 1
    depth = max_in_flight if max_in_flight is not None else (1 if inline else 2 * max(n, 1))
    if depth < 1:
        raise InvalidArgument("max_in_flight must be >= 1")
    source = _cut(items, start_index, batch_size, batch_bytes, item_size or _default_size)
    token = os.urandom(16).hex()  # names this run's lazy initialization in each process (uuid: slow import)
    if inline:
        return _inline(_Task(fn, batched, initializer, initargs, token), source, start_batch, stop)
    if executor is not None:
        task = _Task(fn, batched, initializer, initargs, token, pack)
        return _pipelined(executor, task, source, depth, start_batch, start_index, stop)
    return _own_pool(
        n,
        initializer,
        initargs,
        _Task(fn, batched, None, (), token, pack),
        source,
        depth,
        start_batch,
        start_index,
        stop,
    )


def _own_pool(
    n: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...], task: _Task, *args: Any
) -> Generator[Batch[Any], None, None]:
    """Run on a pool of our own, started at the first ``next()`` and shut down when the run ends."""
    with process_pool(n, initializer, initargs) as pool:
        yield from _pipelined(pool, task, *args)


def _inline(
    task: _Task, source: Iterator[tuple[int, Sequence[Any], int]], first: int, stop: threading.Event | None
) -> Generator[Batch[Any], None, None]:
    for number, (start, chunk, nbytes) in enumerate(source, first):
        yield Batch(number, start, _run_batch(task, start, chunk), nbytes)
        if stop is not None and stop.is_set():
            return


def _drain(pending: deque[tuple[Future[Sequence[Any]], int, int, int]]) -> None:
    """On stop: cancel the batches not started; keep the running ones that precede them (input order)."""
    keep = 0
    for future, *_ in pending:
        if future.cancel():
            break
        keep += 1
    for future, *_ in list(pending)[keep:]:
        future.cancel()
    while len(pending) > keep:
        pending.pop()
    if keep:
        log.info("stopping: finishing %d batches already running", keep)


def _pipelined(
    executor: Executor,
    task: _Task,
    source: Iterator[tuple[int, Sequence[Any], int]],
    depth: int,
    first: int,
    first_index: int,
    stop: threading.Event | None,
) -> Generator[Batch[Any], None, None]:
    pending: deque[tuple[Future[Sequence[Any]], int, int, int]] = deque()
    numbers = itertools.count(first)
    stopping = False

    def fill() -> None:
        while len(pending) < depth and not stopping:
            nxt = next(source, None)
            if nxt is None:
                return
            start, chunk, nbytes = nxt
            pending.append((executor.submit(_run_batch, task, start, chunk), next(numbers), start, nbytes))

    delivered = first_index  # first item not yet yielded
    try:
        while True:
            try:
                fill()  # submit() too raises once the pool is broken
                if not pending:
                    return
                future, number, start, nbytes = pending[0]
                results = future.result()
            except BrokenExecutor as exc:
                raise WorkerCrashed(delivered, _describe(exc)) from exc
            pending.popleft()
            yield Batch(number, start, results, nbytes)
            delivered = start + len(results)
            if stop is not None and stop.is_set() and not stopping:
                stopping = True
                _drain(pending)
    finally:
        for future, *_ in pending:
            future.cancel()


def run_ordered(
    items: Iterable[T],
    fn: Callable[[T], R] | Callable[[list[T]], Sequence[R]],
    *,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_bytes: int | None = None,
    item_size: Callable[[T], int] | None = None,
    max_in_flight: int | None = None,
    executor: Executor | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    batched: bool = False,
) -> Generator[R | Failed, None, None]:
    """Yield ``fn(item)`` for each item, in input order; a failing item yields a :class:`Failed`.

    ``workers`` processes (default: all cores; 0 or 1: in this process, no pool) unless ``executor`` is
    given (any :class:`concurrent.futures.Executor`; the caller owns and shuts it down; ``initializer``
    then runs lazily once per process, before its first batch). ``batch_size`` items per task, fewer once
    ``batch_bytes`` of input (measured by ``item_size``, default ``len`` of bytes/str) are reached.
    ``max_in_flight`` batches at most are read ahead (default 2 per worker). ``batched=True``: ``fn``
    takes a list of items and returns a list of results.

    Arguments are checked at the call; the pool starts at the first ``next()`` and shuts down when the
    results are exhausted or closed (wrap in :func:`contextlib.closing` when you may stop early).
    """
    batches = run_batches(
        items,
        fn,
        workers=workers,
        batch_size=batch_size,
        batch_bytes=batch_bytes,
        item_size=item_size,
        max_in_flight=max_in_flight,
        executor=executor,
        initializer=initializer,
        initargs=initargs,
        batched=batched,
    )
    return _flatten(batches)


def _flatten(batches: Generator[Batch[R], None, None]) -> Generator[R | Failed, None, None]:
    try:
        for batch in batches:
            yield from batch.results
    finally:
        batches.close()  # closing the results closes the run (and shuts its pool down) at once
