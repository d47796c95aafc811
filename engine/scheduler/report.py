"""The numbers of a finished (or interrupted) run, as a dict for the JSON report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any


class RunReport:
    """Counts per outcome ("rewrapped", "copied", "failed", ...), bytes, elapsed time and rates."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.stopped: float | None = None
        self.outcomes: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0

    def add(self, outcome: str, n: int = 1) -> None:
        """Count ``n`` items with ``outcome``."""
        self.outcomes[outcome] += n

    def add_all(self, outcomes: Iterable[str]) -> None:
        """Count one item per outcome given (a batch's, in one C-level pass)."""
        self.outcomes.update(outcomes)

    def add_bytes(self, nbytes_in: int = 0, nbytes_out: int = 0) -> None:
        """Count input and output bytes."""
        self.bytes_in += nbytes_in
        self.bytes_out += nbytes_out

    def stop(self) -> None:
        """Freeze the elapsed time (called at the end of the run; later calls keep the first)."""
        if self.stopped is None:
            self.stopped = self.clock()

    @property
    def items(self) -> int:
        """Items counted, all outcomes together."""
        return sum(self.outcomes.values())

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        """``items``, ``outcomes``, bytes, ``elapsed_s``, ``items_per_s``, ``mb_per_s`` (input), ``extra``."""
        elapsed = (self.stopped if self.stopped is not None else self.clock()) - self.started
        per_s = 1.0 / elapsed if elapsed > 0 else 0.0
        return {
            "items": self.items,
            "outcomes": dict(sorted(self.outcomes.items())),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "elapsed_s": round(elapsed, 3),
            "items_per_s": round(self.items * per_s, 1),
            "mb_per_s": round(self.bytes_in * per_s / 1e6, 2),
            **extra,
        }
