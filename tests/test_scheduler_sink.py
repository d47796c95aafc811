"""The segmented AppendFile's writer: direct (O_DIRECT) writes, page-cache writes, and a file system
that refuses direct writes mid-run all give the same file, at every checkpoint and after a resume at
any offset (block-aligned or not)."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from engine.scheduler import sink as sink_mod
from engine.scheduler.journal import START, Position
from engine.scheduler.sink import AppendFile, segment_entry, segment_hash

MODES = ["direct", "page-cache", "refused"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sink_mod, "_STAGE", 3 * sink_mod._ALIGN)  # small: the buffer fills often
    if request.param == "page-cache":
        monkeypatch.delattr(os, "O_DIRECT", raising=False)
    elif request.param == "refused":  # open succeeds, the first direct write is refused
        real = os.pwrite
        direct: set[int] = set()
        real_open = os.open

        def tracking_open(path: object, flags: int, *args: object) -> int:
            fd = real_open(path, flags, *args)  # type: ignore[arg-type]
            if flags & getattr(os, "O_DIRECT", 0):
                direct.add(fd)
            return fd

        def pwrite(fd: int, data: object, at: int) -> int:
            if fd in direct:
                raise OSError(errno.EINVAL, "direct writes refused")
            return real(fd, data, at)  # type: ignore[arg-type]

        def close(fd: int) -> None:
            direct.discard(fd)
            real_close(fd)

        real_close = os.close
        monkeypatch.setattr(os, "open", tracking_open)
        monkeypatch.setattr(os, "close", close)
        monkeypatch.setattr(os, "pwrite", pwrite)
    return request.param


def _direct_possible(tmp_path: Path) -> bool:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        os.close(os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT | flag, 0o600))
    except OSError:
        return False
    return True


def _pieces(rng: random.Random, n: int) -> list[bytes]:
    sizes = [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 7, 5 * 4096 + 1]
    return [
        rng.randbytes(rng.choice(sizes) if rng.random() < 0.5 else rng.randrange(1, 20000)) for _ in range(n)
    ]


def test_appends_from_memory_and_files_checkpoint_and_resume(tmp_path: Path, mode: str) -> None:
    rng = random.Random(5)
    out = tmp_path / "out"
    shard = tmp_path / "shard"
    expected = b""
    segments: list[tuple[int, bytes]] = []
    position = START
    for round_ in range(4):
        f = AppendFile(out, segmented=True)
        f.rewind(position, segments)
        if mode == "direct" and _direct_possible(tmp_path):
            assert f._app is not None and f._app.dfd is not None
        for piece in _pieces(rng, 12):
            if rng.random() < 0.5:
                f.write_segments([piece], [segment_entry(len(piece), segment_hash.digest(piece))])
            else:  # from a file, at an offset inside it
                pad = rng.randrange(0, 5000)
                shard.write_bytes(rng.randbytes(pad) + piece + b"tail")
                f.append_from(shard, pad, len(piece), [segment_entry(len(piece), segment_hash.digest(piece))])
            expected += piece
            segments.append((len(piece), segment_hash.digest(piece)))
            if rng.random() < 0.3:
                offset, _ = f.checkpoint()
                assert offset == len(expected) and out.read_bytes() == expected
        offset, digest = f.checkpoint()
        assert offset == len(expected) and out.read_bytes() == expected
        position = Position(len(segments), offset, digest)
        extra = rng.randbytes(rng.randrange(1, 9000))
        f.write_segments([extra], [segment_entry(len(extra), segment_hash.digest(extra))])
        f.close()  # written, not checkpointed: the next rewind cuts it
        assert out.read_bytes() == expected + extra, round_
    f = AppendFile(out, segmented=True)
    f.rewind(position, segments)
    f.close()
    assert out.read_bytes() == expected


def test_direct_false_writes_through_the_page_cache(tmp_path: Path) -> None:
    """``AppendFile(direct=False)`` (an output about to be re-read, ``--verify``) never opens the file
    with O_DIRECT, and writes the same bytes."""
    f = AppendFile(tmp_path / "out", segmented=True, direct=False)
    f.rewind(START)
    assert f._app is not None and f._app.dfd is None and f._app.buf is None
    chunks = [b"one\n", b"two" * 3000, b"three\n"]
    f.write_segments(chunks, [segment_entry(len(c), segment_hash.digest(c)) for c in chunks])
    offset, _ = f.checkpoint()
    f.close()
    assert (tmp_path / "out").read_bytes() == b"".join(chunks) and offset == len(b"".join(chunks))
