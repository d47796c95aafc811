"""WKD hash throughput: native ``wkd_hashes`` against its pure twin, hashlib with a pure-Python
z-base-32, and ``gpg-wks-client --print-wkd-hash`` fed the same addresses on stdin (one process).

Run: ``python -m pytest bench/test_bench_wkd.py --benchmark-enable``. With benchmarks disabled (the
default) every case runs once on 1,000 addresses as a smoke test and records nothing.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from collections.abc import Callable, Sequence

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from engine import _native

JOB = "wkd_hashes (100k local parts)"
COUNT = 100_000
SMOKE_COUNT = 1_000
ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _make_addresses(count: int, seed: int = 2024) -> list[str]:
    """Mixed-case local parts of 4-24 characters, some with digits, dots, ``+tag`` or non-ASCII."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        local = "".join(rng.choices(_LETTERS + "0123456789", k=rng.randint(2, 12)))
        if rng.random() < 0.5:
            local += "." + "".join(rng.choices(_LETTERS, k=rng.randint(2, 8)))
        if rng.random() < 0.1:
            local += "+" + "".join(rng.choices(_LETTERS, k=3))
        if rng.random() < 0.1:
            local += rng.choice("äöüÄÖÜéß")
        out.append(f"{local}@{rng.choice(('example.org', 'Example.NET', 'mail.example.com'))}")
    return out


ADDRESSES = _make_addresses(COUNT)
LOCALS = [a.rpartition("@")[0] for a in ADDRESSES]


def _zbase32_python(digest: bytes) -> str:
    """z-base-32 of a 20-byte digest, bit by bit in Python (the obvious code)."""
    n = int.from_bytes(digest, "big")
    return "".join(ZBASE32[(n >> shift) & 31] for shift in range(155, -1, -5))


def hashlib_baseline(locals_: Sequence[str]) -> list[str]:
    """hashlib SHA-1 of the ASCII-lowered UTF-8 bytes plus a pure-Python z-base-32."""
    return [
        _zbase32_python(hashlib.sha1(x.encode("utf-8").translate(_ASCII_LOWER)).digest()) for x in locals_
    ]


CHECK = hashlib_baseline(LOCALS[:200])


def _run(
    benchmark: BenchmarkFixture, record: Callable[..., None], impl: str, fn: Callable[[list[str]], list[str]]
) -> None:
    enabled = not benchmark.disabled
    data = LOCALS if enabled else LOCALS[:SMOKE_COUNT]
    result = benchmark.pedantic(fn, args=(data,), rounds=5 if enabled else 1, iterations=1)
    assert result[: len(CHECK)] == CHECK  # same answers as the baseline on the first addresses
    if enabled:
        record(JOB, impl, len(data) / benchmark.stats.stats.min, "addresses/s")


def test_native(benchmark: BenchmarkFixture, record: Callable[..., None]) -> None:
    impls = _native.implementations("wkd")
    if "native" not in impls:
        pytest.skip("engine._wkd_c not built")
    _run(benchmark, record, "native", impls["native"].wkd_hashes)


def test_pure_twin(benchmark: BenchmarkFixture, record: Callable[..., None]) -> None:
    _run(benchmark, record, "pure", _native.implementations("wkd")["pure"].wkd_hashes)


def test_hashlib_baseline(benchmark: BenchmarkFixture, record: Callable[..., None]) -> None:
    _run(benchmark, record, "hashlib+py-zbase32", hashlib_baseline)


def test_gpg_wks_client(
    benchmark: BenchmarkFixture, record: Callable[..., None], record_skip: Callable[[str, str, str], None]
) -> None:
    tool = shutil.which("gpg-wks-client") or shutil.which(
        "gpg-wks-client", path="/usr/lib/gnupg:/usr/libexec"
    )
    if tool is None:
        record_skip(JOB, "gpg-wks-client", "not installed")
        pytest.skip("gpg-wks-client not installed")
    enabled = not benchmark.disabled
    addresses = ADDRESSES if enabled else ADDRESSES[:SMOKE_COUNT]
    stdin = "".join(f"{a}\n" for a in addresses).encode("utf-8")

    def run() -> list[str]:
        proc = subprocess.run([tool, "--print-wkd-hash"], input=stdin, capture_output=True, check=True)
        return [line.split(" ", 1)[0] for line in proc.stdout.decode("utf-8").splitlines()]

    result = benchmark.pedantic(run, rounds=3 if enabled else 1, iterations=1)
    assert len(result) == len(addresses)
    assert result[: len(CHECK)] == CHECK
    if enabled:
        record(
            JOB, "gpg-wks-client", len(addresses) / benchmark.stats.stats.min, "addresses/s", "one process"
        )
