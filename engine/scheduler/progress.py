"""Progress of a long run: a bar with rate and ETA on a terminal, periodic plain lines otherwise.

On a TTY the bar is drawn by ``tqdm`` when it is installed (plain lines otherwise); in a log file or a
pipe (CI, cron) one line every ``interval`` seconds; nothing at all with ``quiet``. Items and bytes are
counted; rates count only this run's work, so a resumed run does not report the skipped part as speed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Count items and bytes and show it; ``with Progress(total) as p: p.update(n, nbytes)``."""

    def __init__(
        self,
        total: int | None = None,
        *,
        unit: str = "item",
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        bar: bool | None = None,
    ) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.items = 0
        self.bytes = 0
        self._base = 0
        self._t0 = clock()
        self._next_line = self._t0 + interval
        self._bar: Any = None
        self._closed = False
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.mode = "quiet" if quiet else ("bar" if (isatty if bar is None else bar) else "lines")
        if self.mode == "bar":
            try:
                import tqdm  # noqa: F401
            except ImportError:
                self.mode = "lines"

    def begin(self, done_items: int = 0, done_bytes: int = 0) -> None:
        """Restart the clock (it starts at construction); ``done_*``: work of an earlier run (a resume)."""
        self.items, self.bytes, self._base = done_items, done_bytes, done_items
        self._t0 = self.clock()
        self._next_line = self._t0 + self.interval
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.mode == "bar":
            self._open_bar()

    def _open_bar(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.total,
            initial=self.items,
            unit=self.unit,
            file=self.stream,
            dynamic_ncols=True,
            smoothing=0.05,
        )

    def update(self, items: int = 1, nbytes: int = 0) -> None:
        """Count finished work; draws the bar or prints a line when one is due."""
        self.items += items
        self.bytes += nbytes
        if self.mode == "bar":
            if self._bar is None:
                self._open_bar()
            elapsed = max(self.clock() - self._t0, 1e-9)
            self._bar.set_postfix_str(f"{self.bytes / elapsed / 1e6:.1f} MB/s", refresh=False)
            self._bar.update(items)
        elif self.mode == "lines" and self.clock() >= self._next_line:
            self._print()
            self._next_line = self.clock() + self.interval

    def line(self) -> str:
        """The current state as one line of text."""
        elapsed = max(self.clock() - self._t0, 1e-9)
        rate = (self.items - self._base) / elapsed
        done = f"{self.items}"
        eta = ""
        if self.total:
            done += f"/{self.total} {self.unit}s ({100.0 * self.items / self.total:.1f}%)"
            if rate > 0:
                eta = f", ETA {_duration((self.total - self.items) / rate)}"
        else:
            done += f" {self.unit}s"
        return (
            f"{done}, {rate:.1f} {self.unit}s/s, {self.bytes / elapsed / 1e6:.2f} MB/s, "
            f"elapsed {_duration(elapsed)}{eta}"
        )

    def _print(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar, or print the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            self._print()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
