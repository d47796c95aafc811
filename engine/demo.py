"""``pgpbulk demo``: run the jobs on built-in sample data and report what happened and how fast.

Sample data is generated deterministically in memory or in a temporary directory; nothing of the user's
is read or written.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TextIO

from engine import _native

SEED = 20261128
FIRST_NAMES = ["alice", "Bob", "carol", "Dave", "ÉMILE", "jörg", "Joe.Doe", "mallory", "peggy", "trent"]
DOMAINS = ["example.org", "example.net", "mail.example.com"]


def sample_addresses(count: int, seed: int = SEED) -> list[str]:
    """Deterministic mail addresses, some upper-case, non-ASCII and with ``+`` tags."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        local = f"{rng.choice(FIRST_NAMES)}{i}"
        if rng.random() < 0.1:
            local += f"+tag{rng.randrange(100)}"
        out.append(f"{local}@{rng.choice(DOMAINS)}")
    return out


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def demo_armor(out: TextIO) -> bool:
    from engine.armor import armor, dearmor

    data = random.Random(SEED).randbytes(16 << 20)
    text, t_armor = _timed(lambda: armor(data, "MESSAGE"))
    back, t_dearmor = _timed(lambda: dearmor(text))
    ok = back.data == data  # type: ignore[union-attr]
    mb = len(data) / 1e6
    out.write(
        f"armor:   16 MiB armored in {t_armor * 1e3:.1f} ms ({mb / t_armor / 1e3:.2f} GB/s), "
        f"dearmored in {t_dearmor * 1e3:.1f} ms ({mb / t_dearmor / 1e3:.2f} GB/s); round trip "
        f"{'identical' if ok else 'DIFFERS'}\n"
    )
    return ok


def demo_wkd(out: TextIO) -> bool:
    from engine.wkd import split_address, wkd_hash, wkd_hashes, wkd_url

    addresses = sample_addresses(200_000)
    locals_ = [split_address(a)[0] for a in addresses]
    hashes, t_hash = _timed(lambda: wkd_hashes(locals_))
    ok = wkd_hash("Joe.Doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    out.write(
        f"wkd:     {len(addresses):,} addresses hashed in {t_hash * 1e3:.1f} ms "
        f"({len(addresses) / t_hash / 1e6:.2f} M/s); examples:\n"
    )
    for address, h in zip(addresses[:3], hashes[:3], strict=True):  # type: ignore[index]
        out.write(f"         {h} {address}\n         {wkd_url(address)}\n")
    return ok


def demo_wkd_build(out: TextIO) -> bool:
    from engine.wkd.demo import demo_wkd_build as run

    return run(out)


def demo_archive(out: TextIO) -> bool:
    from engine.mail.demo import demo_archive as run

    return run(out)


STEPS: list[Callable[[TextIO], bool]] = [demo_armor, demo_wkd, demo_wkd_build, demo_archive]


def run_demo(out: TextIO) -> int:
    """Run every demo step; exit code 0 when each one verified its own result."""
    kernels = ", ".join(f"{k}={v}" for k, v in _native.describe().items())
    out.write(f"pgpbulk demo (kernels: {kernels})\n")
    ok = all([step(out) for step in STEPS])
    out.write("demo: all results verified\n" if ok else "demo: a result did not verify\n")
    return 0 if ok else 1
