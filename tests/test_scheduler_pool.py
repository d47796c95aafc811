"""run_ordered / run_batches: order, back-pressure, failures, in-process path, executors, crashes, logs."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool

import pytest

from engine.scheduler import Failed, WorkerCrashed, WorkerInitError, process_pool, run_batches, run_ordered

# Module-level functions: the pool pickles them by reference.
state: dict[str, object] = {}
init_calls: list[int] = []


def jitter(x: int) -> int:
    time.sleep(((x * 7919) % 11) / 2000)  # 0..5 ms, scrambles completion order
    return x * x


def picky(x: int) -> int:
    if x % 7 == 3:
        raise ValueError(f"no {x}")
    return x + 1


def picky_batch(xs: list[int]) -> list[int]:
    if 13 in xs:
        raise KeyError("thirteen")
    return [x + 1 for x in xs]


def remember(key: str) -> None:
    state["key"] = key
    state["pid"] = os.getpid()
    init_calls.append(os.getpid())


def with_state(x: int) -> tuple[object, int]:
    return state.get("key"), x


def bad_init() -> None:
    raise RuntimeError("PIN blocked")


def die_on_10(x: int) -> int:
    if x == 10:
        os._exit(3)
    time.sleep(0.01)
    return x


def chatty(x: int) -> int:
    logging.getLogger("engine.test.worker").info("worker saw %d in pid %d", x, os.getpid())
    return x


class Tracked:
    """An input stream that records how many items were taken from it."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.taken = 0

    def __iter__(self) -> Iterator[int]:
        for i in itertools.count() if self.n is None else range(self.n):
            self.taken += 1
            yield i


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """One two-process pool shared by the tests that need no pool of their own (saves start-ups)."""
    with process_pool(2) as shared:
        yield shared


def test_order_kept_with_random_delays_on_two_workers() -> None:
    out = list(run_ordered(range(120), jitter, workers=2, batch_size=3))
    assert out == [x * x for x in range(120)]


@pytest.mark.parametrize("workers", [0, 2])
def test_back_pressure_bounds_read_ahead(workers: int, pool: ProcessPoolExecutor) -> None:
    src = Tracked(200)
    depth, size = 3, 4
    lead = []
    executor = pool if workers else None
    run = run_ordered(src, jitter, workers=workers, batch_size=size, max_in_flight=depth, executor=executor)
    for k, _ in enumerate(run):
        lead.append(src.taken - (k + 1))
        if workers:
            time.sleep(0.0005)  # a consumer slower than the pool: the pool must wait for it
    assert src.taken == 200
    assert max(lead) < depth * size
    if workers:
        assert max(lead) > size  # it does read ahead, so the bound above is what holds it


def test_infinite_stream_is_consumed_lazily_and_closed(pool: ProcessPoolExecutor) -> None:
    src = Tracked(None)
    gen = run_ordered(src, jitter, executor=pool, batch_size=5, max_in_flight=4)
    first = list(itertools.islice(gen, 50))
    gen.close()  # cancels pending batches, shuts the pool down
    assert first == [x * x for x in range(50)]
    assert src.taken <= 50 + 4 * 5


@pytest.mark.parametrize("workers", [0, 2])
def test_stop_finishes_running_batches_then_ends(workers: int, pool: ProcessPoolExecutor) -> None:
    stop, src, got = threading.Event(), Tracked(1000), []
    executor = pool if workers else None
    for batch in run_batches(
        src, jitter, workers=workers, executor=executor, batch_size=5, max_in_flight=6, stop=stop
    ):
        got.append(batch)
        stop.set()
    assert [b.start for b in got] == list(range(0, 5 * len(got), 5))  # a contiguous prefix, in order
    assert [r for b in got for r in b.results] == [x * x for x in range(5 * len(got))]
    assert len(got) == 1 if not workers else 1 <= len(got) <= 6
    assert src.taken <= 30


def test_failures_come_back_in_place_and_the_rest_is_done(pool: ProcessPoolExecutor) -> None:
    out = list(run_ordered(range(40), picky, executor=pool, batch_size=4))
    for i, r in enumerate(out):
        if i % 7 == 3:
            assert r == Failed(i, f"ValueError: no {i}", "ValueError")
        else:
            assert r == i + 1


def test_batch_function_failure_is_isolated_to_its_item(pool: ProcessPoolExecutor) -> None:
    out = list(run_ordered(range(30), picky_batch, executor=pool, batch_size=8, batched=True))
    assert out[13] == Failed(13, "KeyError: 'thirteen'", "KeyError")
    assert [r for i, r in enumerate(out) if i != 13] == [x + 1 for x in range(30) if x != 13]


@pytest.mark.parametrize("workers", [0, 1])
def test_in_process_path_equals_pool_path(workers: int, pool: ProcessPoolExecutor) -> None:
    pooled = list(run_ordered(range(50), picky, executor=pool, batch_size=6))
    inline = list(run_ordered(range(50), picky, workers=workers, batch_size=6))
    assert inline == pooled
    assert sum(isinstance(r, Failed) for r in inline) == 7


def test_pool_initializer_sets_per_process_state() -> None:
    out = list(
        run_ordered(
            range(20), with_state, workers=2, batch_size=3, initializer=remember, initargs=("unlocked",)
        )
    )
    assert out == [("unlocked", x) for x in range(20)]
    assert "key" not in state  # it ran in the workers, not here


def test_custom_executor_plugs_in_and_runs_initializer_once_per_process() -> None:
    init_calls.clear()
    state.clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        out = list(
            run_ordered(
                range(30),
                with_state,
                executor=pool,
                batch_size=4,
                initializer=remember,
                initargs=("thread-key",),
            )
        )
        assert pool.submit(sum, [1, 2]).result() == 3  # the caller's executor is left running
    assert out == [("thread-key", x) for x in range(30)]
    assert init_calls == [os.getpid()]
    state.clear()


def test_batches_carry_numbering_and_bytes() -> None:
    items = [b"x" * n for n in (10, 20, 30, 40, 50)]
    batches = list(
        run_batches(items, len, workers=0, batch_size=10, batch_bytes=45, start_index=100, start_batch=7)
    )
    assert [(b.index, b.start, b.end, b.nbytes) for b in batches] == [(7, 100, 103, 60), (8, 103, 105, 90)]
    assert [r for b in batches for r in b.results] == [10, 20, 30, 40, 50]


def test_failing_initializer_stops_the_run_with_its_reason() -> None:
    with pytest.raises(WorkerInitError, match="PIN blocked"):
        list(run_ordered(range(10), picky, workers=2, initializer=bad_init))
    with pytest.raises(WorkerInitError, match="PIN blocked"):
        list(run_ordered(range(10), picky, workers=0, initializer=bad_init))


def test_dead_worker_raises_worker_crashed_with_resume_index() -> None:
    got: list[int] = []
    with pytest.raises(WorkerCrashed, match="worker process died") as info:
        for r in run_ordered(range(40), die_on_10, workers=2, batch_size=4):
            got.append(r)
    assert info.value.next_index in (0, 4, 8)  # the batch holding item 10 starts at 8
    assert got == list(range(info.value.next_index))


class BreaksOnThirdSubmit(ThreadPoolExecutor):
    """An executor that turns broken (as a pool whose worker died) at its third task."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 3:
            raise BrokenThreadPool("worker gone")
        return super().submit(fn, *args, **kwargs)


def test_broken_executor_at_submit_reports_the_first_undelivered_item() -> None:
    got = []
    with BreaksOnThirdSubmit() as broken, pytest.raises(WorkerCrashed, match="worker gone") as info:
        for batch in run_batches(
            range(100), picky, executor=broken, batch_size=5, max_in_flight=1, start_index=1000
        ):
            got.extend(batch.results)
    assert info.value.next_index == 1010
    assert len(got) == 10


@pytest.mark.parametrize("start_method", ["default", "fork"])
def test_worker_log_records_reach_the_parent_handler(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, start_method: str
) -> None:
    """Through our queue listener (forkserver/spawn) and through multiprocessing-logging (fork)."""
    if start_method != "default":
        monkeypatch.setenv("PGPBULK_START_METHOD", start_method)
    caplog.set_level(logging.INFO)
    list(run_ordered(range(12), chatty, workers=2, batch_size=3))
    records = [r for r in caplog.records if r.name == "engine.test.worker"]
    assert sorted(int(r.getMessage().split()[2]) for r in records) == list(range(12))
    assert {r.process for r in records} - {os.getpid()}, "records must come from worker processes"


def test_worker_records_below_the_parent_level_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    list(run_ordered(range(6), chatty, workers=2, batch_size=3))
    assert not [r for r in caplog.records if r.name == "engine.test.worker"]


def test_bad_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        run_ordered(range(3), picky, batch_size=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        run_ordered(range(3), picky, workers=2, max_in_flight=0)
    with pytest.raises(ValueError, match="workers"):
        run_batches(range(3), picky, workers=-1)
