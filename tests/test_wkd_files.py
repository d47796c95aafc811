"""WKD build, the worker's files: ``create_files`` of the wkd kernel (native against pure twin),
:func:`engine.wkd.tree.write_rows` over batches of one or several domains, and the files the parent
merges whatever the order their rows came in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from engine import _native
from engine.wkd import tree
from engine.wkd.build import Packed, Record

KERNELS = _native.implementations("wkd")


@pytest.fixture(params=sorted(KERNELS))
def kernel(request: pytest.FixtureRequest) -> ModuleType:
    return KERNELS[request.param]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield tmp_path, fd
    finally:
        os.close(fd)


def _contents(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file() and not p.is_symlink()}


def test_create_files_writes_each_new_file_once(kernel: ModuleType, folder: tuple[Path, int]) -> None:
    """Each row's file holds its bytes (any bytes-like, a large one whole); a name met again, or one
    that was there before, is left as it is and its row's index returned, in order."""
    path, fd = folder
    (path / "old").write_bytes(b"before")
    big = os.urandom(3 << 20)
    rows = [
        ("x", "a", b"first a"),
        ("x", "b", bytearray(b"b bytes")),
        ("x", "a", b"second a"),
        ("x", "old", b"never"),
        ("x", "big", memoryview(big)),
        ("x", "empty", b""),
        ("x", "b", b"second b"),
    ]
    assert kernel.create_files(fd, rows, 1, 2) == [2, 3, 6]
    assert _contents(path) == {"a": b"first a", "b": b"b bytes", "big": big, "empty": b"", "old": b"before"}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((path / "a").stat().st_mode) == 0o644 & ~umask
    assert kernel.create_files(fd, [], 0, 1) == []


def test_create_files_never_follows_a_symlink(kernel: ModuleType, folder: tuple[Path, int]) -> None:
    path, fd = folder
    (path / "link").symlink_to(path / "target")
    assert kernel.create_files(fd, [("link", b"data")], 0, 1) == [0]
    assert not (path / "target").exists()


def test_create_files_raises_other_failures(kernel: ModuleType, folder: tuple[Path, int]) -> None:
    """Anything but an existing name raises (as ``os.open`` would) after the files before it are made."""
    path, fd = folder
    with pytest.raises(FileNotFoundError) as caught:
        kernel.create_files(fd, [("made", b"1"), ("no/such", b"2"), ("after", b"3")], 0, 1)
    assert caught.value.filename == "no/such"
    assert _contents(path) == {"made": b"1"}
    with pytest.raises(ValueError, match="null"):
        kernel.create_files(fd, [("nul\0name", b"")], 0, 1)
    with pytest.raises(TypeError):
        kernel.create_files(fd, [("nodata", None)], 0, 1)
    with pytest.raises(OSError) as bad:
        kernel.create_files(-1, [("x", b"")], 0, 1)
    assert bad.value.errno == 9  # EBADF
    assert _contents(path) == {"made": b"1"}


def _record(domain: str, name: str, data: bytes) -> tuple:
    return (domain, name, "local", f"local@{domain}", "F" * 40, 1700000000, data, "valid")


@pytest.mark.parametrize("impl", sorted(KERNELS))
def test_write_rows_over_interleaved_domains(impl: str, tmp_path: Path) -> None:
    """Records of two domains in one batch: each file written by its first record; the later ones (in
    either domain) come back as unwritten rows carrying their bytes, indexed after the rows before."""
    records = [
        _record("a.example", "h1", b"a1"),
        _record("b.example", "h1", b"b1"),
        _record("b.example", "h2", b"b2"),
        _record("a.example", "h1", b"a1 again"),
        _record("b.example", "h2", b"b2 again"),
        _record("a.example", "h3", b"a3"),
    ]
    out = Packed(rows=[("earlier", "row", "{}", None, None)])
    tree._made.clear()
    with _native.use(impl):
        tree.write_rows(str(tmp_path), "advanced", records, out)
    assert out.unwritten == [4, 5]
    assert [row[3] for row in out.rows] == [None, None, None, None, b"a1 again", b"b2 again", None]
    assert [row[:2] for row in out.rows[1:]] == [r[:2] for r in records]
    assert out.domains == {"a.example", "b.example"}
    assert _contents(tmp_path / "a.example" / "hu") == {"h1": b"a1", "h3": b"a3"}
    assert _contents(tmp_path / "b.example" / "hu") == {"h1": b"b1", "h2": b"b2"}


@pytest.mark.parametrize("impl", sorted(KERNELS))
@pytest.mark.parametrize("method", ["advanced", "direct"])
def test_write_records_returns_written_ones_without_bytes(impl: str, method: str, tmp_path: Path) -> None:
    """:func:`tree.write_records` (the select_batch path): in input order, a written record without its
    bytes but with its file's SHA-256, one whose file exists as it came; every folder closed again."""
    records = [Record(*r[:7], r[7], len(r[6])) for r in (
        _record("a.example", "h1", b"a1"),
        _record("b.example", "h2", b"b2"),
        _record("a.example", "h1", b"a1 again"),
        _record("a.example", "h3", b"a3"),
    )]  # fmt: skip
    (tmp_path / "hu").mkdir()
    (tmp_path / "hu" / "h3").write_bytes(b"taken")  # direct: h3's file is someone else's
    tree._made.clear()
    before = len(os.listdir("/proc/self/fd"))
    with _native.use(impl):
        got = tree.write_records(str(tmp_path), method, iter(records))
    assert len(os.listdir("/proc/self/fd")) == before
    taken = {2, 3} if method == "direct" else {2}
    for i, (rec, back) in enumerate(zip(records, got, strict=True)):
        if i in taken:
            assert back is rec
            continue
        want = dataclasses.replace(rec, data=b"", sha256=hashlib.sha256(rec.data).hexdigest(), written=True)
        assert back == want
    if method == "direct":
        assert _contents(tmp_path / "hu") == {"h1": b"a1", "h2": b"b2", "h3": b"taken"}
    else:
        assert _contents(tmp_path / "a.example" / "hu") == {"h1": b"a1", "h3": b"a3"}
        assert _contents(tmp_path / "b.example" / "hu") == {"h2": b"b2"}


def test_create_files_pure_continues_short_writes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The twin's write loop (a regular file takes a whole write at once: forced short here)."""
    pure = KERNELS["pure"]
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:1000])))
    data = os.urandom(4567)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert pure.create_files(fd, [("f", data)], 0, 1) == []
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def _row(hashed: str, fpr: str, created: int, data: bytes, written: bool) -> tuple:
    sha = hashlib.sha256(data).hexdigest()
    text = tree.entry_text(
        "advanced", "example.org", hashed, hashed, f"{hashed}@example.org", fpr, created, "valid", sha
    )
    return ("example.org", hashed, text, None if written else data, None)


def _packed(*rows: tuple) -> Packed:
    return Packed(rows=list(rows), unwritten=[i for i, r in enumerate(rows) if r[3] is not None])


def test_merge_finds_every_row_of_a_returned_file_wherever_it_came(tmp_path: Path) -> None:
    """The files the parent rewrites, whatever the order their rows came in: the bytes that came back
    before the worker-written key's row (another task, an earlier batch), a file no worker wrote (every
    key's bytes came back) and one whose only key came back; a plain file is left alone."""
    stage = tmp_path / "stage"
    stage.mkdir()
    writer = tree.TreeWriter(stage, "advanced", b"", ["example.org"])
    hu = stage / "example.org" / "hu"
    (hu / "late").write_bytes(b"new")  # written by a worker, its row comes after the returned one
    (hu / "plain").write_bytes(b"plain")
    try:
        writer.add_packed(
            _packed(_row("late", "F1", 100, b"old", False), _row("nobody", "F1", 100, b"a", False))
        )
        writer.add_packed(
            _packed(_row("plain", "F3", 300, b"plain", True), _row("alone", "F1", 100, b"x", False))
        )
        writer.add_packed(
            _packed(_row("nobody", "F2", 200, b"b", False), _row("late", "F2", 200, b"new", True))
        )
        entries = {e["hash"]: e for texts in writer.finish_entries() for e in map(json.loads, texts)}
    finally:
        writer.close()
    assert _contents(hu) == {"alone": b"x", "late": b"newold", "nobody": b"ba", "plain": b"plain"}
    assert {h: e["fingerprints"] for h, e in entries.items()} == {
        "alone": ["F1"],
        "late": ["F2", "F1"],
        "nobody": ["F2", "F1"],
        "plain": ["F3"],
    }
    assert all(e["sha256"] == hashlib.sha256((hu / h).read_bytes()).hexdigest() for h, e in entries.items())


_ODD_LOCALS = ["joe", 'q"uote', "back\\slash", "tab\there", "nul\0", "jörg", "zoë\u2028", "𝄞\x7f"]


@pytest.mark.parametrize("method", ["advanced", "direct", "both"])
def test_entry_texts_are_the_json_of_the_entry_or_none(kernel: ModuleType, method: str) -> None:
    """``entry_texts`` of the wkd kernel: for each plain address exactly what ``json`` writes for the
    entry of a file of that one key (key order included), non-ASCII as it is; None where the address
    needs escaping (the caller encodes those)."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    records = [
        (domain, f"h{i}", local, f"{local.lower()}@{domain}", f"{i:040X}", 1700000000 + i, b"", status)
        for i, (local, domain, status) in enumerate(
            (local, domain, status)
            for local in _ODD_LOCALS
            for domain in ("example.org", "bücher.example")
            for status in ("valid", "revoked")
        )
    ]
    shas = [f"{i:064x}" for i in range(len(records))]
    texts = kernel.entry_texts(method, records, shas)
    for (domain, hashed, local, address, fpr, created, _, status), sha, text in zip(
        records, shas, texts, strict=True
    ):
        if re.search(r'[\x00-\x1f\\"]', address):  # what json escapes (ensure_ascii=False)
            assert text is None
        else:
            assert text == encode(
                tree._entry(method, domain, hashed, local, address, [(fpr, created)], [status], sha)
            )
    assert sum(text is None for text in texts) == 16  # quote, backslash, tab and NUL in either domain
    with pytest.raises(ValueError):
        kernel.entry_texts("sideways", records, shas)
    with pytest.raises(ValueError):
        kernel.entry_texts(method, records, shas[1:])
