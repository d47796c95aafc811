"""mbox reading and writing: byte-exact round trips, quoting, variants, line endings, truncation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InvalidArgument, StructuralError
from engine.mail.item import MailItem
from engine.mail.mbox import read_mbox, write_mbox
from tests import mailgen


def _roundtrip(tmp_path: Path, messages: list[bytes]) -> list[MailItem]:
    src = mailgen.write_mbox(tmp_path / "in.mbox", messages)
    items = list(read_mbox(src))
    assert [i.raw for i in items] == messages
    write_mbox(tmp_path / "out.mbox", items)
    again = list(read_mbox(tmp_path / "out.mbox"))
    assert [i.raw for i in again] == messages
    assert [i.separator_line for i in again] == [i.separator_line for i in items]
    # our writer and the independent generator agree byte for byte
    assert (tmp_path / "out.mbox").read_bytes() == src.read_bytes()
    return items


def test_generated_archive_roundtrips(tmp_path: Path) -> None:
    messages = mailgen.generate(seed=7)
    items = _roundtrip(tmp_path, messages)
    assert [i.index for i in items] == list(range(len(messages)))
    assert not any(i.truncated for i in items)
    data = (tmp_path / "in.mbox").read_bytes()
    for item in items:
        assert data[item.offset :].startswith(item.separator_line or b"?")


def test_crlf_file_roundtrips(tmp_path: Path) -> None:
    messages = mailgen.generate(seed=3, count=30, crlf_every=1)
    _roundtrip(tmp_path, messages)
    assert b"\r\n\r\nFrom alice" in (tmp_path / "out.mbox").read_bytes()


@pytest.mark.parametrize(
    "raw",
    [b"", b"a", b"a\n", b"a\r", b"a\r\n", b"\n", b"\n\n", b"a\r\n\r\n", b"x\nFrom y\n>From z", b">From a\r"],
)
def test_edge_messages_roundtrip(tmp_path: Path, raw: bytes) -> None:
    _roundtrip(tmp_path, [raw, b"Subject: next\n\nbody\n", raw])


def test_from_quoting_is_mboxrd(tmp_path: Path) -> None:
    raw = b"Subject: q\n\nFrom a\n>From b\n>>From c\nFromage\n"
    write_mbox(tmp_path / "o", [MailItem(0, raw)])
    data = (tmp_path / "o").read_bytes()
    assert b"\n>From a\n>>From b\n>>>From c\nFromage\n" in data
    assert next(iter(read_mbox(tmp_path / "o"))).raw == raw
    # mboxo leaves quoting alone
    mboxo = next(iter(read_mbox(tmp_path / "o", "mboxo")))
    assert mboxo.raw == b"Subject: q\n\n>From a\n>>From b\n>>>From c\nFromage\n"


def test_mboxo_keeps_quotes(tmp_path: Path) -> None:
    (tmp_path / "o").write_bytes(b"From a\nSubject: x\n\n>From quoted\nend\n\nFrom b\nSubject: y\n\nz\n\n")
    items = list(read_mbox(tmp_path / "o", "mboxo"))
    assert [i.raw for i in items] == [b"Subject: x\n\n>From quoted\nend\n", b"Subject: y\n\nz\n"]
    rd = list(read_mbox(tmp_path / "o"))
    assert rd[0].raw == b"Subject: x\n\nFrom quoted\nend\n"


def test_mboxcl2_content_length(tmp_path: Path) -> None:
    body = b"From inside the body, unquoted\nsecond\n"
    data = (
        b"From a Mon Jan  1 00:00:00 2024\nSubject: one\nContent-Length: %d\n\n%s\n" % (len(body), body)
        + b"From b Mon Jan  1 00:00:00 2024\nSubject: two\nContent-Length: 2\n\nhi\n"
        + b"From c Mon Jan  1 00:00:00 2024\nSubject: wrong length\nContent-Length: 999\n\nshort\n\n"
        + b"From d Mon Jan  1 00:00:00 2024\nSubject: four\n\nx\n\n"
    )
    (tmp_path / "cl").write_bytes(data)
    items = list(read_mbox(tmp_path / "cl", "mboxcl2"))
    assert [i.raw for i in items] == [
        b"Subject: one\nContent-Length: %d\n\n%s" % (len(body), body),
        b"Subject: two\nContent-Length: 2\n\nhi",
        b"Subject: wrong length\nContent-Length: 999\n\nshort\n",
        b"Subject: four\n\nx\n",
    ]
    assert not any(i.truncated for i in items)
    # written back as mboxrd, the body's From line is quoted and the messages survive
    write_mbox(tmp_path / "rd", items)
    assert [i.raw for i in read_mbox(tmp_path / "rd")] == [i.raw for i in items]


def test_mboxcl2_truncated_by_length(tmp_path: Path) -> None:
    (tmp_path / "cl").write_bytes(b"From a\nSubject: x\nContent-Length: 50\n\nonly a bit\n")
    (item,) = read_mbox(tmp_path / "cl", "mboxcl2")
    assert item.truncated
    assert item.raw == b"Subject: x\nContent-Length: 50\n\nonly a bit\n"


def test_truncated_last_message(tmp_path: Path) -> None:
    messages = mailgen.generate(seed=1, count=6)
    data = mailgen.mbox_bytes(messages)
    (tmp_path / "t").write_bytes(data[:-40])
    items = list(read_mbox(tmp_path / "t"))
    assert len(items) == 6
    assert [i.truncated for i in items] == [False] * 5 + [True]
    assert items[-1].raw == data[items[-1].offset + len(items[-1].separator_line or b"") : -40]
    # carried over: written with the line ending it lacked, later messages could follow it
    write_mbox(tmp_path / "o", items)
    assert [i.raw for i in read_mbox(tmp_path / "o")] == [i.raw for i in items]


def test_last_message_without_blank_line(tmp_path: Path) -> None:
    """The line ending before end of file belongs to the separator, as before every ``From `` line."""
    (tmp_path / "t").write_bytes(b"From a\nSubject: x\n\nend\n")
    (item,) = read_mbox(tmp_path / "t")
    assert (item.raw, item.truncated) == (b"Subject: x\n\nend", False)
    write_mbox(tmp_path / "o", [item])
    assert (tmp_path / "o").read_bytes() == (tmp_path / "t").read_bytes()


def test_separator_cut_short(tmp_path: Path) -> None:
    (tmp_path / "t").write_bytes(b"From a\n\nx\n\nFrom b Mon")
    items = list(read_mbox(tmp_path / "t"))
    assert [(i.raw, i.truncated) for i in items] == [(b"\nx\n", False), (b"", True)]


def test_not_an_mbox(tmp_path: Path) -> None:
    (tmp_path / "n").write_bytes(b"Subject: hello\n\nbody\n")
    with pytest.raises(StructuralError):
        list(read_mbox(tmp_path / "n"))
    (tmp_path / "e").write_bytes(b"")
    assert list(read_mbox(tmp_path / "e")) == []
    with pytest.raises(InvalidArgument):
        list(read_mbox(tmp_path / "e", "mmdf"))


def test_reader_streams_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny read size forces every separator and quote to straddle a chunk border."""
    import engine.mail.mbox as mbox

    monkeypatch.setattr(mbox, "_CHUNK", 7)
    _roundtrip(tmp_path, mailgen.generate(seed=5, count=20))


_MESSAGE = st.binary(max_size=60).map(lambda b: b.replace(b"F", b"From ").replace(b"\0", b"\n"))


@settings(max_examples=60, deadline=None)
@given(st.lists(_MESSAGE, max_size=5))
def test_any_bytes_roundtrip(tmp_path_factory: pytest.TempPathFactory, messages: list[bytes]) -> None:
    d = tmp_path_factory.mktemp("h")
    write_mbox(d / "o", [MailItem(i, m) for i, m in enumerate(messages)])
    assert [i.raw for i in read_mbox(d / "o")] == messages
