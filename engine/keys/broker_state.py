"""The card broker's bookkeeping (:mod:`engine.keys.broker`): a queued request, a card's queue, in-flight
operations and counters, and the start method of the owner processes."""

from __future__ import annotations

import multiprocessing
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from engine.keys.broker_card import CardMetrics


@dataclass(eq=False)
class Request:
    """One worker request, waiting for a card or in flight."""

    client: Connection
    rid: int
    fingerprint: bytes
    op: str
    args: tuple[bytes, ...]


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
    """``forkserver`` (``spawn`` where missing): a card process must not inherit the parent's sessions."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
