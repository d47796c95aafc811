"""Bench job for the WKD hash: ``wkd_hashes`` native and pure twin against hashlib with a pure-Python
z-base-32 (the obvious Python code) and ``gpg-wks-client --print-wkd-hash`` fed every address on stdin.

Our implementations take local parts already split (as ``pgpbulk wkd hash`` batches them);
gpg-wks-client parses full addresses. Throughput is addresses per second.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from engine.bench import peers
from engine.bench.registry import Dataset, DataSpec, Impl, Job
from engine.bench.timing import in_process, run_process

ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
NAMES = ("alice", "Bob", "carol", "Dave", "ÉMILE", "jörg", "Joe.Doe", "mallory", "ÄRGER", "trent")
DOMAINS = ("example.org", "example.net", "mail.example.com")


def _addresses(count: int, seed: int) -> bytes:
    """``count`` addresses, one per line: mixed case, some non-ASCII, some ``+tag``."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        local = f"{rng.choice(NAMES)}{i}"
        if rng.random() < 0.1:
            local += f"+tag{rng.randrange(100)}"
        lines.append(f"{local}@{rng.choice(DOMAINS)}\n")
    return "".join(lines).encode("utf-8")


def _load(raw: bytes) -> list[str]:
    """Local parts of the cached addresses."""
    return [line.rsplit("@", 1)[0] for line in raw.decode("utf-8").splitlines()]


ADDRESSES = DataSpec("addresses", _addresses, _load)


def zbase32_sha1(digest: bytes) -> str:
    """Pure-Python z-base-32 of a 20-byte digest (160 bits, exactly 32 characters)."""
    n = int.from_bytes(digest, "big")
    return "".join(ZBASE32[(n >> shift) & 31] for shift in range(155, -1, -5))


def hashlib_hashes(locals_: Sequence[str]) -> list[str]:
    """The baseline: hashlib SHA-1 and a pure-Python z-base-32; ``bytes.lower`` maps ASCII only."""
    return [zbase32_sha1(hashlib.sha1(local.encode("utf-8").lower()).digest()) for local in locals_]


def _kernel(impl: str) -> Callable[[Dataset], float]:
    def call(locals_: Any) -> object:
        from engine.wkd import wkd_hashes

        return wkd_hashes(locals_)

    timed = in_process(call)

    def measure(data: Dataset) -> float:
        from engine import _native

        with _native.use(impl):
            return timed(data.value)

    return measure


def _hashlib(data: Dataset) -> float:
    return _timed_hashlib(data.value)


_timed_hashlib = in_process(hashlib_hashes)


def _wks_client(data: Dataset) -> float:
    argv = [peers.which("gpg-wks-client") or "gpg-wks-client", "--print-wkd-hash"]
    return run_process(argv, data.path, env=peers.gnupg_env())


def jobs() -> list[Job]:
    """The WKD jobs (the WKD tree build will join here)."""
    return [
        Job(
            name="wkd-hash",
            unit="items/s",
            data=ADDRESSES,
            size=200_000,
            quick_size=20_000,
            quick_budget=2.0,
            description="WKD hashes of many local parts in one batch call",
            impls=(
                Impl("native", _kernel("native"), "us", (peers.NATIVE,)),
                Impl("pure twin", _kernel("pure"), "twin", gated=True),
                Impl("hashlib + py zbase32", _hashlib, note="bytes.lower(), pure-Python z-base-32"),
                Impl(
                    "gpg-wks-client",
                    _wks_client,
                    requires=(peers.tool("gpg-wks-client"),),
                    gated=True,
                    note="--print-wkd-hash, all addresses on stdin",
                ),
            ),
        ),
    ]
