"""Archive workers keep freed large buffers (engine.mail.malloc): a run of growing message-sized
buffers faults in far fewer pages than with glibc's defaults, which map and unmap each one."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from engine.mail.malloc import keep_large_buffers
if sys.argv[1] == "tuned":
    assert keep_large_buffers()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
for mib in range(4, 24):  # each larger than any freed before: glibc's adaptive threshold never catches up
    buffer = b"x" * (mib << 20)
    del buffer
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuned_workers_reuse_large_buffers() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    touched = sum(range(4, 24)) << 8  # pages written: 4 KiB pages of 4..23 MiB
    assert default > touched * 0.9
    assert tuned < default / 3
