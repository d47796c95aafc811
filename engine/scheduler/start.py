"""The worker pool's start method and the early start of its fork server.

Kept apart from :mod:`engine.scheduler.pool` (which loads ``concurrent.futures``, ``logging`` and
``dataclasses``, some 40 ms): a command starts the fork server first, before it imports anything else,
so that the server loads the workers' modules on one core while the command loads its own on the other.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import Any

from engine.errors import InvalidArgument

START_METHOD_ENV = "PGPBULK_START_METHOD"


def pool_context() -> BaseContext:
    """The multiprocessing context of our pool: ``forkserver`` where available, else ``spawn``.

    ``PGPBULK_START_METHOD=fork`` trades safety for start-up speed: forked workers inherit the parent's
    threads' locks, open PKCS#11 sessions and agent sockets, so use it only with in-process (``file:``)
    keys. Under ``fork`` worker logs go through ``multiprocessing-logging``.
    """
    methods = multiprocessing.get_all_start_methods()
    wanted = os.environ.get(START_METHOD_ENV) or ("forkserver" if "forkserver" in methods else "spawn")
    if wanted not in methods:
        raise InvalidArgument(f"{START_METHOD_ENV}={wanted!r}: not one of {', '.join(methods)}")
    return multiprocessing.get_context(wanted)


def _preload(ctx: BaseContext, initializer: Callable[..., Any] | None, extra: Sequence[str] = ()) -> None:
    module = getattr(initializer, "__module__", None)
    modules = [m for m in (module, *extra) if m and m != "__main__"]
    if ctx.get_start_method() == "forkserver" and modules:
        ctx.set_forkserver_preload(["__main__", *modules])  # type: ignore[attr-defined]


def prestart(
    workers: int | None, initializer: Callable[..., Any] | None, modules: Sequence[str] = ()
) -> None:
    """Start the fork server now, loading ``initializer``'s module and ``modules``, so that it loads while
    the caller goes on starting (a card's owner process, say) and each worker is then forked ready.
    ``initializer`` may be None when ``modules`` name what the workers need (a command can start the
    server before it imports those modules itself, so both import at once on two cores).
    Does nothing when the run will not use a pool of its own (one worker) or under another start method;
    a no-op once the fork server runs (it is one per process)."""
    if ((os.cpu_count() or 1) if workers is None else workers) <= 1:
        return
    ctx = pool_context()
    if ctx.get_start_method() != "forkserver":
        return
    _preload(ctx, initializer, modules)
    from multiprocessing import forkserver

    _start_resource_tracker()
    forkserver.ensure_running()  # spawns the server and returns; it imports while we go on


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker, which the fork server needs, without ``site`` (``-S``):
    it runs only the standard library, and ``site`` would run every ``.pth`` start-up hook of the
    installation (an editable install's finder, say; here some 25 ms of CPU) in a process that needs
    none of them. A no-op once the tracker runs; a frozen program starts it as multiprocessing does."""
    from multiprocessing import resource_tracker, util

    flags = getattr(util, "_args_from_interpreter_flags", None)
    if flags is None or getattr(sys, "frozen", False):
        return
    util._args_from_interpreter_flags = lambda: [*flags(), "-S"]  # read by ensure_running() alone
    try:
        resource_tracker.ensure_running()
    finally:
        util._args_from_interpreter_flags = flags
