"""One log for the parent and every worker process.

Workers send their records through a ``multiprocessing`` queue (:class:`logging.handlers.QueueHandler`);
a :class:`~logging.handlers.QueueListener` thread in the parent hands each record to the parent's logger of
the same name, so the parent's handlers, levels and filters (``-v``/``-q``, pytest's ``caplog``) apply to
worker records as to its own. ``multiprocessing-logging`` only works with the ``fork`` start method; the
scheduler uses it when that method is chosen (``PGPBULK_START_METHOD=fork``): it wraps the parent's handlers
so the records of forked workers, which inherit those handlers, reach the parent through its queue.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from typing import Any, TextIO

FORMAT = "%(levelname)s %(processName)s %(name)s: %(message)s"
_OURS = "_pgpbulk_handler"


def verbosity_level(verbosity: int) -> int:
    """Map ``-q`` (-1) / default (0) / ``-v`` (1) / ``-vv`` (2+) to a logging level."""
    if verbosity < 0:
        return logging.ERROR
    return (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now, so a replaced (or closed test) stderr is never kept."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(verbosity: int = 0, stream: TextIO | None = None) -> logging.Handler:
    """Send log records to ``stream`` (stderr) at the level ``verbosity`` selects; idempotent."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(verbosity_level(verbosity))
    return handler


class _Redispatch(logging.Handler):
    """Hand a record from a worker to the parent's logger of the same name."""

    def handle(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does the work
        pass


@contextmanager
def worker_log_queue(ctx: BaseContext) -> Iterator[tuple[Any, int]]:
    """A queue for worker records and the level workers should log at, drained while the block runs."""
    if ctx.get_start_method() == "fork":
        import multiprocessing_logging

        root = logging.getLogger()
        multiprocessing_logging.install_mp_handler(root)
        wrapped = [h for h in root.handlers if isinstance(h, multiprocessing_logging.MultiProcessingHandler)]
        try:
            yield None, root.getEffectiveLevel()
        finally:
            multiprocessing_logging.uninstall_mp_handler(root)
            for handler in wrapped:
                handler.close()  # waits until the records the workers sent are handed on
        return
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _Redispatch())
    listener.start()
    try:
        yield queue, logging.getLogger().getEffectiveLevel()
    finally:
        listener.stop()  # drains what the workers sent before they exited
        queue.close()
        queue.join_thread()


def install_worker_logging(queue: Any, level: int) -> None:
    """In a worker: route every record to ``queue`` (replacing inherited handlers).

    ``queue`` is None under ``fork``: the inherited ``multiprocessing-logging`` handlers already do it.
    """
    root = logging.getLogger()
    if queue is None:
        root.setLevel(level)
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(logging.handlers.QueueHandler(queue))
    root.setLevel(level)
