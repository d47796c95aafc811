"""Peak memory of ``pgpbulk encrypt`` does not grow with the archive (issue 5: < 300 MB whatever its size).

Two generated mbox archives with a tail of ~2 MB attachments, one five times the other, are encrypted
by the command on two workers; the peak RSS (``VmHWM``) of the command and of its largest worker,
polled from /proc, must stay below 300 MiB and differ by less than 50 MiB between the two sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.bench.jobs_mail import _CLI, run_measured
from engine.mail.samples import write_archive
from tests.test_archive_cli import make_key

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def _peaks(tmp_path: Path, cert: Path, count: int, total: int) -> tuple[int, int]:
    src = write_archive(tmp_path / f"src-{count}.mbox", count, total, seed=7)
    dst = tmp_path / f"enc-{count}.mbox"
    argv = [sys.executable, "-c", _CLI, "encrypt", str(src), "-o", str(dst), "-r", str(cert), "-q"]
    _, command, worker = run_measured([*argv, "--workers", "2"], interval=0.02)
    assert dst.stat().st_size > src.stat().st_size  # every message encrypted (armor makes it larger)
    dst.unlink()
    return command, worker


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_archive(tmp_path: Path) -> None:
    _, cert = make_key(tmp_path, "alice")
    small = _peaks(tmp_path, cert, 200, 20_000_000)
    large = _peaks(tmp_path, cert, 1_000, 100_000_000)
    mib = [round(k / 1024) for k in (*small, *large)]
    assert all(k < 300 * 1024 for k in (*small, *large)), f"peak RSS MiB (command, worker) x2: {mib}"
    assert abs(large[0] - small[0]) < 50 * 1024, f"command grows with the archive: {mib}"
    assert abs(large[1] - small[1]) < 50 * 1024, f"workers grow with the archive: {mib}"
    assert small[1] > 0 and large[1] > 0  # the workers were seen
