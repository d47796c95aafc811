"""The mbox scanning kernel (``engine._mboxscan_c`` / ``engine._mboxscan_py``): ``find`` answers as
``bytes.find`` does on every kind of buffer, both implementations alike, and an mbox scans the same."""

from __future__ import annotations

import mmap
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native
from engine.mail.mbox import read_mbox, scan_mbox
from tests import mailgen

KERNELS = _native.implementations("mboxscan")
NEEDLES = [b"\nFrom ", b"\n", b"\n\n", b"\n\r\n", b"From", b"x"]


@pytest.fixture(params=sorted(KERNELS))
def kernel(request: pytest.FixtureRequest) -> ModuleType:
    return KERNELS[request.param]


def test_features_name_the_implementation() -> None:
    assert {name: m.features()["native"] for name, m in KERNELS.items()} == {
        name: name == "native" for name in KERNELS
    }


@pytest.mark.parametrize(
    ("data", "needle", "start", "expected"),
    [
        (b"From a\nFrom b\n", b"\nFrom ", 0, 6),
        (b"From a\nFrom b\n", b"\nFrom ", 7, -1),
        (b"\nFrom ", b"\nFrom ", 0, 0),  # at the very start, filling the buffer
        (b"ab\nFrom", b"\nFrom ", 0, -1),  # cut short at the end
        (b"ab\nFrom x", b"\nFrom ", 3, -1),
        (b"\n\n\nFrom x", b"\nFrom ", 0, 2),  # candidates before the match
        (b"abc", b"c", 2, 2),
        (b"abc", b"c", 3, -1),
        (b"abc", b"c", 99, -1),  # past the end
        (b"", b"\n", 0, -1),
        (b"ab", b"abc", 0, -1),  # needle longer than the data
    ],
)
def test_find_cases(kernel: ModuleType, data: bytes, needle: bytes, start: int, expected: int) -> None:
    assert kernel.find(data, needle, start) == expected == data.find(needle, start)


def test_find_refuses_what_bytes_find_would_guess(kernel: ModuleType) -> None:
    with pytest.raises(ValueError):
        kernel.find(b"abc", b"", 0)
    with pytest.raises(ValueError):
        kernel.find(b"abc", b"a", -1)
    with pytest.raises(TypeError):
        kernel.find(b"abc", bytearray(b"a"), 0)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"\n", b"From ", b"F", b"x", b"\r\n", b">From ", b" "]), max_size=40).map(
        b"".join
    ),
    needle=st.sampled_from(NEEDLES),
    start=st.integers(0, 200),
)
def test_find_agrees_with_bytes_find(data: bytes, needle: bytes, start: int) -> None:
    expected = data.find(needle, start)
    for m in KERNELS.values():
        assert m.find(data, needle, start) == expected
        assert m.find(bytearray(data), needle, start) == expected
        assert m.find(memoryview(data), needle, start) == expected


def test_find_on_a_memory_map(kernel: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "m"
    data = b"x" * 70000 + b"\nFrom a\n" + b"y" * 10 + b"\nFrom b"
    path.write_bytes(data)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        found, pos = [], 0
        while (pos := kernel.find(mm, b"\nFrom ", pos)) >= 0:
            found.append(pos)
            pos += 1
    assert found == [70000, 70018] and data[70018:].startswith(b"\nFrom b")


@pytest.mark.parametrize("variant", ["mboxrd", "mboxo", "mboxcl2"])
def test_scan_is_the_same_on_both_kernels(tmp_path: Path, variant: str) -> None:
    messages = mailgen.generate(seed=11, count=40, crlf_every=5)
    src = mailgen.write_mbox(tmp_path / "in.mbox", messages)
    with open(src, "ab") as f:
        f.write(b"From last\nSubject: cut\n\nno newline at the end")  # a truncated last message
    scans, reads = {}, {}
    for name in KERNELS:
        with _native.use(name):
            scans[name] = list(scan_mbox(src, variant))
            reads[name] = [(i.raw, i.separator_line, i.truncated) for i in read_mbox(src, variant)]
    first = next(iter(scans.values()))
    assert all(s == first for s in scans.values()) and all(r == reads["pure"] for r in reads.values())
    assert len(first) == len(messages) + 1 and first[-1].truncated and not first[-2].truncated
    if variant == "mboxrd":
        assert [r[0] for r in reads["pure"][:-1]] == messages
