"""Maildir and .eml directories, format detection, and sinks that appear only when complete."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.mail.emldir import read_emldir
from engine.mail.item import MailItem
from engine.mail.maildir import crlf_size, fix_sizes, read_maildir
from engine.mail.source import detect_format, open_sink, open_source
from tests import mailgen


def _copy(src: Path, dst: Path, fmt: str | None = None) -> list[MailItem]:
    items = list(open_source(src))
    with open_sink(dst, fmt or open_source(src).fmt) as sink:
        for item in items:
            sink.write(item)
    return items


def test_maildir_roundtrip_keeps_names_flags_and_order(tmp_path: Path) -> None:
    messages = mailgen.generate(seed=9, count=20)
    files = mailgen.write_maildir(tmp_path / "src", messages)
    items = list(read_maildir(tmp_path / "src"))
    assert [i.raw for i in items] == messages
    assert [(i.subdir, i.name) for i in items] == [(f.parent.name, f.name) for f in files]
    _copy(tmp_path / "src", tmp_path / "dst")
    out = list(read_maildir(tmp_path / "dst"))
    assert [(i.subdir, i.name, i.raw) for i in out] == [(i.subdir, i.name, i.raw) for i in items]
    for f in (tmp_path / "dst").glob("*/*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert not any((tmp_path / "dst" / "tmp").iterdir())
    assert not (tmp_path / "dst.partial").exists()


def test_dovecot_sizes_follow_the_bytes() -> None:
    raw = b"Subject: x\n\nline\r\nline\n"
    assert crlf_size(raw) == len(raw) + 3
    name = "1700000000.M1P2.host,S=1234,W=1260:2,S"
    assert fix_sizes(name, raw) == f"1700000000.M1P2.host,S={len(raw)},W={len(raw) + 3}:2,S"
    assert fix_sizes("1700000000.M1P2.host:2,S=", raw) == "1700000000.M1P2.host:2,S="
    assert fix_sizes("plain", raw) == "plain"


def test_changed_message_gets_new_sizes(tmp_path: Path) -> None:
    raw = b"Subject: x\n\nbody\n"
    mailgen.write_maildir(tmp_path / "src", [raw])
    (item,) = read_maildir(tmp_path / "src")
    with open_sink(tmp_path / "dst", "maildir") as sink:
        sink.write(item.with_raw(raw * 3))
    (out,) = read_maildir(tmp_path / "dst")
    assert out.name == mailgen.dovecot_name(0, raw * 3, "S")
    assert out.name != item.name


def test_emldir_roundtrip(tmp_path: Path) -> None:
    messages = mailgen.generate(seed=10, count=16)
    mailgen.write_emldir(tmp_path / "src", messages)
    (tmp_path / "src" / "notes.txt").write_text("not mail")
    assert detect_format(tmp_path / "src") == "emldir"
    _copy(tmp_path / "src", tmp_path / "dst")
    out = list(read_emldir(tmp_path / "dst"))
    assert [i.raw for i in out] == messages
    assert [i.name for i in out] == [f"{i:04d}.eml" for i in range(16)]


@pytest.mark.parametrize("target", ["mbox", "maildir", "emldir"])
def test_mbox_to_any_and_back_keeps_order_and_bytes(tmp_path: Path, target: str) -> None:
    messages = mailgen.generate(seed=12, count=25)
    mailgen.write_mbox(tmp_path / "src.mbox", messages)
    _copy(tmp_path / "src.mbox", tmp_path / "mid", target)
    assert detect_format(tmp_path / "mid") == target
    assert [i.raw for i in open_source(tmp_path / "mid")] == messages
    _copy(tmp_path / "mid", tmp_path / "back.mbox", "mbox")
    assert [i.raw for i in open_source(tmp_path / "back.mbox")] == messages


def test_detection_and_override(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument):
        detect_format(tmp_path / "empty")
    with pytest.raises(InvalidArgument):
        detect_format(tmp_path / "missing")
    with pytest.raises(InvalidArgument):
        open_source(tmp_path / "empty", "mh")
    (tmp_path / "cl").write_bytes(b"From a\nContent-Length: 9\n\nFrom x\nz\n\n")
    assert [i.raw for i in open_source(tmp_path / "cl", "mboxcl2")] == [b"Content-Length: 9\n\nFrom x\nz\n"]
    assert len(list(open_source(tmp_path / "cl"))) == 2


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "emldir"])
def test_sink_abort_and_stale_partial(tmp_path: Path, fmt: str) -> None:
    dst = tmp_path / "out"
    with pytest.raises(RuntimeError), open_sink(dst, fmt) as sink:
        sink.write(MailItem(0, b"Subject: x\n\nsecret\n"))
        assert sink.partial.exists() and not dst.exists()
        raise RuntimeError("boom")
    assert not dst.exists() and not sink.partial.exists()
    # a partial left by a killed run is replaced, never committed as is
    stale = tmp_path / "out.partial"
    stale.mkdir() if fmt != "mbox" else stale.write_bytes(b"stale")
    with open_sink(dst, fmt) as sink:
        sink.write(MailItem(0, b"Subject: y\n\nfresh\n"))
    assert [i.raw for i in open_source(dst)] == [b"Subject: y\n\nfresh\n"]
    assert not stale.exists()


def test_sink_refuses_existing_destination_unless_overwrite(tmp_path: Path) -> None:
    dst = tmp_path / "out.mbox"
    dst.write_bytes(b"From x\n\nold\n\n")
    with pytest.raises(InvalidArgument):
        open_sink(dst, "mbox")
    with open_sink(dst, "mbox", overwrite=True) as sink:
        sink.write(MailItem(0, b"new\n"))
    assert [i.raw for i in open_source(dst)] == [b"new\n"]
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    mailgen.write_maildir(tmp_path / "md", [b"old\n"])
    with open_sink(tmp_path / "md", "maildir", overwrite=True) as sink:
        sink.write(MailItem(0, b"Subject: n\n\nnew\n"))
    assert [i.raw for i in open_source(tmp_path / "md")] == [b"Subject: n\n\nnew\n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["md", "out.mbox"]
