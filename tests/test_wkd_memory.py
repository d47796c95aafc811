"""WKD build: the parent's memory does not grow with the number of addresses (index on disk)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from engine.wkd import manifest as mf
from engine.wkd.publish import build
from engine.wkd.sample import sample_keyring

SMALL = 300


def _peak(tmp_path: Path, count: int) -> tuple[int, int]:
    """Addresses published and the traced peak of a build of ``count`` generated Ed25519 keys."""
    ring = tmp_path / f"ring-{count}.gpg"
    ring.write_bytes(sample_keyring(count, seed=7))
    tracemalloc.start()
    try:
        report = build(tmp_path / f"w{count}", [str(ring)], domains=["example.org"], workers=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(mf.load(report.manifest_path).entries) == report.addresses
    return report.addresses, peak


def test_parent_memory_flat_in_addresses(tmp_path: Path) -> None:
    small_addresses, small = _peak(tmp_path, SMALL)
    large_addresses, large = _peak(tmp_path, 4 * SMALL)
    grown = large_addresses - small_addresses
    assert grown > 2 * small_addresses  # the keyrings really differ
    # An index in memory costs about 1.7 KB per address (about 2 MB here); on disk, none.
    assert large - small < 256 << 10, f"peak grew by {large - small} bytes for {grown} more addresses"
