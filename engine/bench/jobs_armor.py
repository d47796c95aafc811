"""Bench jobs for ASCII armor: armor / dearmor 1 MiB, armor 64 MiB against fresh allocation, and
``ArmorWriter`` streaming to ``/dev/null``.

Peers: our pure-Python twin, ``pybase64.b64encode(data, wrapcol=64)`` (SIMD base64, no CRC), binascii
line by line (no CRC), ``gpg --enarmor`` / ``--dearmor`` and ``sq armor`` / ``sq dearmor`` as one
subprocess over a large file (start-up amortized). Throughput is MB/s of *binary* data in every job.
"""

from __future__ import annotations

import binascii
import os
import random
import time
from collections.abc import Callable
from typing import Any

from engine.bench import peers
from engine.bench.registry import Dataset, DataSpec, Impl, Job, Sweep
from engine.bench.timing import in_process, run_process

KiB, MiB = 1 << 10, 1 << 20
LINE_BYTES = 48  # 48 binary bytes are one 64-column base64 line


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _armored(size: int, seed: int) -> bytes:
    from engine.armor import armor

    return armor(_random_bytes(size, seed), "MESSAGE", crc=True)


def _stream_chunk(size: int, seed: int) -> bytes:
    return _random_bytes(min(size, MiB), seed)


RANDOM = DataSpec("random", _random_bytes)
ARMORED = DataSpec("armored", _armored)
# ``size`` is the number of bytes streamed; the cached data is one 1 MiB chunk written repeatedly.
STREAM = DataSpec("stream-chunk", _stream_chunk)


def _kernel(impl: str, fn: Callable[[Any], Any]) -> Callable[[Dataset], float]:
    """Time ``fn(data.value)`` with every kernel switched to ``impl`` ("native" or "pure")."""
    timed = in_process(fn)

    def measure(data: Dataset) -> float:
        from engine import _native

        with _native.use(impl):
            return timed(data.value)

    return measure


def _plain(fn: Callable[[Any], Any]) -> Callable[[Dataset], float]:
    timed = in_process(fn)
    return lambda data: timed(data.value)


def _on_part(fn: Callable[[Any], Any], fraction: int) -> Callable[[Dataset], float]:
    """Time ``fn`` on the same kind of data at 1/``fraction`` of the size, scaled to the job's size
    (for peers too slow to spend the quick budget on)."""
    timed = in_process(fn)
    parts: dict[Any, Dataset] = {}

    def measure(data: Dataset) -> float:
        key = (data.path, fraction)
        if key not in parts:
            parts[key] = data.resized(max(1, data.size // fraction))
        part = parts[key]
        return timed(part.value) * data.size / part.size

    return measure


def _subprocess(
    argv: Callable[[], list[str]], full: int, quick: int, gnupg: bool = False
) -> Callable[[Dataset], float]:
    """One peer process over a large file of the same kind of data (``full``/``quick`` bytes),
    scaled to the job's size: start-up cost is amortized, not counted per MiB."""

    def measure(data: Dataset) -> float:
        target = int((quick if data.params.get("quick") else full) * data.params.get("scale", 1.0))
        big = data.resized(max(data.size, target))
        env = peers.gnupg_env() if gnupg else None
        return run_process(argv(), big.path, scale=data.size / big.size, env=env)

    return measure


# --- armor -----------------------------------------------------------------------------------------


def _armor(data: bytes) -> bytes:
    from engine.armor import armor

    return armor(data, "MESSAGE", crc=True)


def _binascii_armor(data: bytes) -> bytes:
    b2a, view = binascii.b2a_base64, memoryview(data)
    return b"\n".join([b2a(view[i : i + LINE_BYTES], newline=False) for i in range(0, len(data), LINE_BYTES)])


def _pybase64_armor(data: bytes) -> bytes:
    import pybase64

    return pybase64.b64encode(data, wrapcol=64)


def _fresh_allocation(data: bytes) -> bytes:
    # The output bound: create and fill (page-fault in) a bytes object of the armored size. Above
    # 32 MiB glibc serves every such allocation with fresh mmap pages, as it does our output.
    b64 = 4 * ((len(data) + 2) // 3)
    return b"\x00" * (b64 + (b64 + 63) // 64 + 64)


# --- dearmor ---------------------------------------------------------------------------------------


def _dearmor(text: bytes) -> bytes:
    from engine.armor import dearmor

    return dearmor(text).data


def _body(text: bytes) -> bytes:
    """The base64 lines of one armored block (what a CRC-less peer decodes)."""
    start = text.index(b"\n\n") + 2
    end = text.rfind(b"\n=", start)
    return text[start : end if end >= 0 else text.rindex(b"\n-----END")]


def _binascii_dearmor(text: bytes) -> bytes:
    a2b = binascii.a2b_base64
    return b"".join([a2b(line) for line in _body(text).split(b"\n")])


def _pybase64_dearmor(text: bytes) -> bytes:
    import pybase64

    return pybase64.b64decode(_body(text).replace(b"\n", b""), validate=True)


def _pgpy_dearmor(text: bytes) -> bytes:
    from pgpy.types import Armorable  # type: ignore[import-not-found]

    return Armorable.ascii_unarmor(text.decode("ascii"))["body"]


# --- streaming -------------------------------------------------------------------------------------


def _stream(total: int, chunk: bytes) -> None:
    from engine.armor import ArmorWriter

    with open(os.devnull, "wb") as sink, ArmorWriter(sink, kind="MESSAGE") as writer:
        for _ in range(total // len(chunk)):
            writer.write(chunk)


def _stream_measure(impl: str, fraction: int = 1) -> Callable[[Dataset], float]:
    """Seconds to stream ``data.size`` bytes; ``fraction > 1`` streams 1/fraction and extrapolates."""

    def measure(data: Dataset) -> float:
        from engine import _native

        chunk = data.value
        streamed = max(1, data.size // len(chunk) // fraction) * len(chunk)
        with _native.use(impl):
            start = time.perf_counter()
            _stream(streamed, chunk)
            return (time.perf_counter() - start) * data.size / streamed

    return measure


def _pybase64_stream(data: Dataset) -> float:
    import pybase64

    chunk, n = data.value, data.size // len(data.value)
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        for _ in range(n):
            sink.write(pybase64.b64encode(chunk, wrapcol=64))
        return (time.perf_counter() - start) * data.size / (n * len(chunk))


NATIVE = peers.NATIVE
PYBASE64 = (peers.module("pybase64"),)
PGPY = (peers.module("pgpy"),)
GPG, SQ = (peers.tool("gpg"),), (peers.tool("sq"),)


def jobs() -> list[Job]:
    """The armor jobs."""
    return [
        Job(
            name="armor",
            unit="MB/s",
            data=RANDOM,
            size=MiB,
            quick_size=MiB,
            quick_budget=3.0,
            description="armor 1 MiB with CRC-24 in one call",
            impls=(
                Impl("native", _kernel("native", _armor), "us", (NATIVE,)),
                Impl("pure twin", _kernel("pure", _armor), "twin", gated=True),
                Impl("pybase64 wrapcol=64", _plain(_pybase64_armor), requires=PYBASE64, note="no CRC"),
                Impl("binascii by line", _plain(_binascii_armor), note="no CRC"),
                Impl(
                    "gpg --enarmor",
                    _subprocess(lambda: peers.gpg_argv("--enarmor"), 64 * MiB, 8 * MiB, True),
                    requires=GPG,
                    gated=True,
                    note="one process, start-up amortized",
                ),
                Impl(
                    "sq armor",
                    _subprocess(lambda: [peers.which("sq") or "sq", "armor"], 32 * MiB, 4 * MiB),
                    requires=SQ,
                    note="one process, start-up amortized",
                ),
            ),
            sweep=Sweep(
                "size",
                "message size (bytes)",
                (KiB, 16 * KiB, 256 * KiB, MiB, 16 * MiB),
                (KiB, 64 * KiB, MiB),
                ("native", "pybase64 wrapcol=64", "binascii by line"),
            ),
        ),
        Job(
            name="dearmor",
            unit="MB/s",
            data=ARMORED,
            size=MiB,
            quick_size=MiB,
            quick_budget=3.0,
            family="armor",
            description="dearmor 1 MiB (binary size) with CRC-24 check in one call",
            impls=(
                Impl("native", _kernel("native", _dearmor), "us", (NATIVE,)),
                Impl("pure twin", _kernel("pure", _dearmor), "twin", gated=True),
                Impl("pybase64 b64decode", _plain(_pybase64_dearmor), requires=PYBASE64, note="no CRC"),
                Impl("binascii by line", _plain(_binascii_dearmor), note="no CRC"),
                Impl(
                    "PGPy ascii_unarmor",
                    _on_part(_pgpy_dearmor, 16),
                    requires=PGPY,
                    note="on 1/16 of the data",
                ),
                Impl(
                    "gpg --dearmor",
                    _subprocess(lambda: peers.gpg_argv("--dearmor"), 64 * MiB, 8 * MiB, True),
                    requires=GPG,
                    gated=True,
                    note="one process, start-up amortized",
                ),
                Impl(
                    "sq dearmor",
                    _subprocess(lambda: [peers.which("sq") or "sq", "dearmor"], 32 * MiB, 4 * MiB),
                    requires=SQ,
                    note="one process, start-up amortized",
                ),
            ),
        ),
        Job(
            name="armor-large",
            unit="MB/s",
            data=RANDOM,
            size=64 * MiB,
            # Not smaller with --quick: only above glibc's largest mmap threshold (32 MiB) does every
            # allocation get fresh pages, the bound this job is about.
            quick_size=64 * MiB,
            quick_budget=2.5,
            description="armor 64 MiB in one call against the fresh-allocation bound of its output",
            impls=(
                Impl("native", _kernel("native", _armor), "us", (NATIVE,)),
                Impl("fresh allocation", _plain(_fresh_allocation), "bound", note="create+fill output size"),
                Impl("pybase64 wrapcol=64", _plain(_pybase64_armor), requires=PYBASE64, note="no CRC"),
            ),
        ),
        Job(
            name="armor-stream",
            unit="MB/s",
            data=STREAM,
            size=1 << 30,
            quick_size=64 * MiB,
            quick_budget=2.0,
            description="ArmorWriter streaming 1 MiB chunks to /dev/null",
            impls=(
                Impl("native", _stream_measure("native"), "us", (NATIVE,)),
                Impl(
                    "pure twin",
                    _stream_measure("pure", fraction=64),
                    "twin",
                    gated=True,
                    note="extrapolated from 1/64",
                ),
                Impl(
                    "pybase64 per chunk",
                    _pybase64_stream,
                    requires=PYBASE64,
                    note="b64encode(chunk, wrapcol=64) written; no CRC, no framing",
                ),
            ),
        ),
    ]
