"""Scheduler overhead: items/s of a trivial function in-process and on the pool.

``python -m engine.scheduler.bench [--items N] [--workers 0 2] [--batch-size 64] [--payload BYTES]``
prints one line per configuration, measured on a warm pool (the pool's start-up is printed apart); the
difference to in-process is the per-item cost of the pool.
"""

from __future__ import annotations

import argparse
import resource
import time
from concurrent.futures import Executor

from engine.scheduler.pool import process_pool, run_ordered


def identity(item: bytes) -> bytes:
    """The trivial work item: return the input unchanged (so the payload travels both ways)."""
    return item


def measure(
    items: int, workers: int, batch_size: int, payload: int, executor: Executor | None = None
) -> float:
    """Items per second for ``items`` payloads of ``payload`` bytes through :func:`run_ordered`."""
    t0 = time.perf_counter()
    # A new object per item: pickle would send one shared object only once per batch.
    count = sum(
        1
        for _ in run_ordered(
            (bytes(payload) for _ in range(items)),
            identity,
            workers=workers,
            batch_size=batch_size,
            executor=executor,
        )
    )
    assert count == items
    return items / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    """Command line of the measurement."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch-size", type=int, nargs="+", default=[64])
    ap.add_argument("--payload", type=int, default=0, help="bytes per item (default 0)")
    args = ap.parse_args(argv)
    for workers in args.workers:
        if workers > 1:
            t0 = time.perf_counter()
            measure(1, workers, 1, 0)
            print(f"workers={workers}: pool start-up and shut-down {time.perf_counter() - t0:.3f} s")
        for batch_size in args.batch_size:
            if workers > 1:
                with process_pool(workers) as pool:
                    measure(10 * batch_size, workers, batch_size, args.payload, pool)  # warm up
                    rate = measure(args.items, workers, batch_size, args.payload, pool)
            else:
                rate = measure(args.items, workers, batch_size, args.payload)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"workers={workers} batch_size={batch_size} payload={args.payload}: {rate:,.0f} items/s "
                f"({1e6 / rate:.2f} us/item), parent peak RSS {peak:.0f} MiB"
            )


if __name__ == "__main__":
    main()
