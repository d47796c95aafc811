"""Armor throughput: native vs pure twin vs pybase64 vs ``gpg --enarmor/--dearmor`` on the same data.

Run: ``python -m pytest bench/test_bench_armor.py --benchmark-enable`` (``PGPBULK_BENCH_QUICK=1`` streams
256 MiB instead of 1 GiB). With benchmarks disabled (the default) every case runs once on small inputs
as a smoke test and records nothing. Throughput is input bytes (binary side) per second, best round.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import _native
from engine.armor import ArmorWriter, armor, dearmor

MIB = 1 << 20
QUICK = bool(os.environ.get("PGPBULK_BENCH_QUICK"))
IMPLS = _native.implementations("armor")
_DATA = random.Random(1).randbytes(64 * MIB)


def _features() -> str:
    f = IMPLS["native"].features() if "native" in IMPLS else {}
    return f"base64={f.get('base64', '-')} crc24={f.get('crc24', '-')}"


def _run(benchmark: Any, fn: Callable[[], object], rounds: int) -> object:
    enabled = not benchmark.disabled
    return benchmark.pedantic(
        fn, rounds=rounds if enabled else 1, iterations=1, warmup_rounds=1 if enabled else 0
    )


def _best(benchmark: Any) -> float | None:
    return None if benchmark.disabled else benchmark.stats.stats.min


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_armor_1mib(benchmark: Any, record: Any, record_skip: Any, impl: str) -> None:
    if impl not in IMPLS:
        record_skip("armor 1 MiB", impl, "not built")
        pytest.skip(f"{impl} kernel not built")
    data = _DATA[:MIB]
    with _native.use(impl):
        out = _run(benchmark, lambda: armor(data, crc=True), 30 if impl == "native" else 3)
    assert dearmor(out).data == data
    if (t := _best(benchmark)) is not None:
        record("armor 1 MiB", impl, len(data) / t, note=_features() if impl == "native" else "")


def test_armor_1mib_pybase64(benchmark: Any, record: Any) -> None:
    pybase64 = pytest.importorskip("pybase64")
    data = _DATA[:MIB]
    out = _run(benchmark, lambda: pybase64.b64encode(data, wrapcol=64), 30)
    assert len(out) > len(data)
    if (t := _best(benchmark)) is not None:
        record("armor 1 MiB", "pybase64 (no CRC, no frame)", len(data) / t, note=pybase64._get_simd_name(
            pybase64._get_simd_path()))  # fmt: skip


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_dearmor_1mib(benchmark: Any, record: Any, impl: str) -> None:
    if impl not in IMPLS:
        pytest.skip(f"{impl} kernel not built")
    data = _DATA[:MIB]
    text = armor(data, crc=True)
    with _native.use(impl):
        out = _run(benchmark, lambda: dearmor(text, strict=True), 30 if impl == "native" else 3)
    assert out.data == data
    if (t := _best(benchmark)) is not None:
        record("dearmor 1 MiB", impl, len(data) / t)


def test_dearmor_1mib_pybase64(benchmark: Any, record: Any) -> None:
    pybase64 = pytest.importorskip("pybase64")
    data = _DATA[:MIB]
    body = pybase64.b64encode(data, wrapcol=64)
    out = _run(benchmark, lambda: pybase64.b64decode(body.replace(b"\n", b""), validate=True), 30)
    assert out == data
    if (t := _best(benchmark)) is not None:
        record("dearmor 1 MiB", "pybase64 (strip + decode, no CRC)", len(data) / t)


@pytest.mark.parametrize("direction", ["enarmor", "dearmor"])
def test_gpg(benchmark: Any, record: Any, record_skip: Any, tmp_path: Path, direction: str) -> None:
    """One gpg process over 64 MiB (startup amortized)."""
    job = f"{'armor' if direction == 'enarmor' else 'dearmor'} 1 MiB"
    gpg = shutil.which("gpg")
    if gpg is None:
        record_skip(job, f"gpg --{direction}", "gpg not installed")
        pytest.skip("gpg not installed")
    data = _DATA if not benchmark.disabled else _DATA[:MIB]
    src = tmp_path / "in"
    src.write_bytes(data if direction == "enarmor" else armor(data, "ARMORED FILE", crc=True))
    cmd = [gpg, "--homedir", str(tmp_path), "--batch", "--quiet", f"--{direction}"]

    def run() -> int:
        with src.open("rb") as fin:
            proc = subprocess.run(cmd, stdin=fin, capture_output=True, check=True)
        return len(proc.stdout)

    assert _run(benchmark, run, 3) > 0
    if (t := _best(benchmark)) is not None:
        record(job, f"gpg --{direction} (64 MiB, 1 process)", len(data) / t)


def test_armor_64mib_vs_fresh_allocation(benchmark: Any, record: Any) -> None:
    """One 64 MiB armor() call against the floor: creating and filling a bytes of the output size."""
    if "native" not in IMPLS:
        pytest.skip("native kernel not built")
    data = _DATA if not benchmark.disabled else _DATA[:MIB]
    with _native.use("native"):
        size = len(armor(data, crc=True))
        out = _run(benchmark, lambda: armor(data, crc=True), 10)
    assert len(out) == size
    if (t := _best(benchmark)) is not None:
        floor = _time_min(lambda: b"\x00" * size, 10)
        note = f"{floor / t:.0%} of the allocation floor's speed"
        record("armor 64 MiB, one call", "native", len(data) / t, note=note)
        record("armor 64 MiB, one call", "bytes alloc+fill of output size", len(data) / floor)


def _time_min(fn: Callable[[], object], rounds: int) -> float:
    import time

    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("sink", ["/dev/null"])
def test_writer_stream(benchmark: Any, record: Any, sink: str) -> None:
    """ArmorWriter, 1 MiB writes, 1 GiB (256 MiB quick) to /dev/null in constant memory."""
    if "native" not in IMPLS:
        pytest.skip("native kernel not built")
    total = (256 if QUICK else 1024) * MIB if not benchmark.disabled else 8 * MIB
    chunk = _DATA[:MIB]

    def run() -> None:
        with open(sink, "wb", buffering=0) as f, ArmorWriter(f, crc=True) as w:
            for _ in range(total // MIB):
                w.write(chunk)

    with _native.use("native"):
        _run(benchmark, run, 3)
    if (t := _best(benchmark)) is not None:
        record(f"ArmorWriter {total // MIB} MiB -> {sink}", "native", total / t)
