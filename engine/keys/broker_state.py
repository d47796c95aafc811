"""The card broker's bookkeeping (:mod:`engine.keys.broker`): a queued request, a card's queue, in-flight
operations and counters, the answers of primed operations, and the start method of the owner processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from engine.keys.broker_card import CardMetrics


@dataclass(eq=False)
class Request:
    """One worker request, waiting for a card or in flight; ``client`` None: a primed operation."""

    client: Connection | None
    rid: int
    fingerprint: bytes
    op: str
    args: tuple[bytes, ...]

    @property
    def key(self) -> tuple[bytes, str, tuple[bytes, ...]]:
        return self.fingerprint, self.op, self.args


@dataclass(eq=False)
class _Primed:
    pending: int = 0  # primed operations of this key not answered yet
    answers: deque[tuple[str, Any]] = field(default_factory=deque)
    waiters: deque[Request] = field(default_factory=deque)


class PrimeCache:
    """Operations queued on a card before any worker asked (the parent reads ahead of the workers), and
    their answers, held until a worker asks for the same operation. One primed operation answers one
    request (the same message twice in an archive is primed, and done, twice); a request that finds its
    operation still on the card waits for it."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], _Primed] = {}
        self.primed = 0
        self.hits = 0

    def add(self, req: Request) -> None:
        """Count ``req``, a primed operation the caller sends to a card."""
        self._entries.setdefault(req.key, _Primed()).pending += 1
        self.primed += 1

    def claim(self, req: Request) -> tuple[bool, tuple[str, Any] | None]:
        """A worker's ``req``: ``(False, None)`` nothing primed for it (route it); ``(True, None)`` on the
        card (``req`` waits for it); ``(True, answer)`` the held answer, handed out once."""
        entry = self._entries.get(req.key)
        if entry is None or (not entry.answers and entry.pending <= len(entry.waiters)):
            return False, None
        self.hits += 1
        if not entry.answers:
            entry.waiters.append(req)
            return True, None
        answer = entry.answers.popleft()
        self._tidy(req.key, entry)
        return True, answer

    def settle(self, req: Request, status: str, value: Any) -> list[Request]:
        """A primed operation's answer: the request waiting for it (to answer now), or kept for later."""
        entry = self._entries.get(req.key)
        if entry is None:
            return []
        entry.pending -= 1
        if entry.waiters:
            waiter = entry.waiters.popleft()
            self._tidy(req.key, entry)
            return [waiter]
        entry.answers.append((status, value))
        return []

    def _tidy(self, key: tuple[Any, ...], entry: _Primed) -> None:
        if not (entry.pending or entry.answers or entry.waiters):
            del self._entries[key]


@dataclass(eq=False)
class CardState:
    """One card as the broker sees it: its owner process, FIFO, in-flight operations and counters."""

    name: str
    fingerprints: frozenset[bytes]
    proc: Any
    conn: Connection
    queue: deque[Request] = field(default_factory=deque)
    inflight: dict[int, Request] = field(default_factory=dict)
    alive: bool = True
    reason: str = ""
    ops: int = 0
    errors: int = 0
    retries: int = 0
    busy: float = 0.0
    first_sent: float | None = None
    last_done: float = 0.0
    head_since: float = 0.0
    high_water: int = 0
    idle_gaps: int = 0
    pin_asks: int = 0

    @property
    def load(self) -> int:
        return len(self.queue) + len(self.inflight)

    def snapshot(self) -> CardMetrics:
        active = (self.last_done - self.first_sent) if self.first_sent is not None else 0.0
        return CardMetrics(
            self.name, self.ops, self.errors, self.retries, self.busy, active,
            self.high_water, self.idle_gaps, self.pin_asks, self.alive, self.reason,
        )  # fmt: skip


def owner_context() -> Any:
    """How a card's owner process starts: ``fork`` when that is safe, else ``spawn``.

    ``fork`` is up in milliseconds (a fresh interpreter needs 0.3-0.5 s to start and import the card's
    modules, all of it before the first card operation of a run). It is safe while this process has no
    other thread (no lock can be held by a thread that does not exist in the child) and has not loaded a
    PKCS#11 library (its state must not be inherited); the owner then rebuilds its keys from their
    pickled form, as a spawned one does, so no agent connection or token session is shared, and closes
    the pipe ends it inherited (see :func:`engine.keys.broker_card.card_main`). Otherwise ``spawn``
    (never the pool's fork server, which loads the whole job before forking anything).
    ``PGPBULK_CARD_START=spawn`` forces spawn."""
    if (
        os.environ.get("PGPBULK_CARD_START", "") != "spawn"
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and "pkcs11" not in sys.modules
    ):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
