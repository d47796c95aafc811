"""The archive report counted as the sink writes (no re-read of the records at the end) is the report the
records give, on a fresh run and after a resume, for every output format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.mail.item import MailItem
from engine.mail.report import Report
from engine.mail.sinks import ArchiveSink, Processed, read_records
from engine.scheduler.journal import START, Position

OUTCOMES = [("plain", "encrypted", None), ("pgp_mime", "passed", None), ("malformed", "copied", "bad header")]


def _results(start: int, n: int, fmt: str) -> list[Processed]:
    out = []
    for i in range(start, start + n):
        cls, outcome, reason = OUTCOMES[i % len(OUTCOMES)]
        raw = b"Subject: m%d\n\nFrom the body\n>From quoted\n" % i + b"x" * (i * 7)  # quoted lines: out != w
        sha = hashlib.sha256(b"in%d" % i).hexdigest()
        item = MailItem(i, raw, b"From a@b Thu Jan  1 00:00:00 1970\n", 1000 * i, "/src/archive")
        if fmt == "mbox":
            out.append(Processed.mbox(item, raw, cls, outcome, sha, 900 + i, reason))
        else:
            out.append(Processed(item, cls, outcome, sha, 900 + i, item.source, item.offset, reason,
                                 hashlib.sha256(raw).hexdigest()))  # fmt: skip
    return out


def _from_records(path: Path) -> dict[str, object]:
    rep = Report("encrypt", "s", "d", "mbox", "mbox")
    for r in read_records(path):
        rep.count_record(r)
    return rep.to_dict()


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "emldir"])
def test_counted_report_equals_the_records(tmp_path: Path, fmt: str) -> None:
    dst = tmp_path / "out"
    rep = Report("encrypt", "s", "d", "mbox", "mbox")
    sink = ArchiveSink(dst, fmt, report=rep)
    sink.rewind(START)
    assert sink.counted
    for start in (0, 5, 10):
        sink.write_batch(_results(start, 5, fmt))
    offset, digest = sink.checkpoint()
    assert rep.messages == 15 and rep.failures and rep.to_dict() == _from_records(sink.records)
    sink.write_batch(_results(15, 3, fmt))  # written, never committed: cut on resume
    sink.close()

    resumed = Report("encrypt", "s", "d", "mbox", "mbox")  # resume after the first 15 messages
    sink = ArchiveSink(dst, fmt, report=resumed)
    sink.rewind(Position(15, offset, digest))
    sink.write_batch(_results(15, 4, fmt))
    sink.checkpoint()
    sink.close()
    assert resumed.messages == 19 and resumed.to_dict() == _from_records(sink.records)
    with pytest.raises(InvalidArgument):  # counting twice would count the kept messages twice
        sink.rewind(Position(15, offset, digest))


def test_a_run_found_finished_on_resume_reports_from_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed after its journal said ``done`` but before the rename: the resume writes nothing (the sink
    is never rewound, so nothing is counted) and the report comes from the records."""
    from engine.mail.source import open_source
    from tests import mailgen
    from tests.test_archive_cli import make_key, pgpbulk

    _, pub = make_key(tmp_path, "alice")
    src = mailgen.write_mbox(tmp_path / "src.mbox", mailgen.generate(seed=3, count=12))
    dst, report = tmp_path / "out.mbox", tmp_path / "report.json"
    argv = ["encrypt", str(src), "-o", str(dst), "-r", str(pub), "--workers", "1", "--report", str(report)]
    real = ArchiveSink.commit

    def killed(self: ArchiveSink) -> None:
        raise KeyboardInterrupt  # as if killed there

    monkeypatch.setattr(ArchiveSink, "commit", killed)
    assert pgpbulk(capsys, *argv)[0] == 130
    assert not dst.exists() and '"k":"done"' in (tmp_path / "out.mbox.journal").read_text()
    monkeypatch.setattr(ArchiveSink, "commit", real)
    code, _, err = pgpbulk(capsys, *argv, "--resume")
    assert code in (0, 1), err  # 1: some samples are carried over unchanged, and listed
    data = json.loads(report.read_text())
    originals = [item.raw for item in open_source(src)]
    assert data["messages"] == len(originals) and data["committed"] and dst.exists()
    assert data["sha256"] == [hashlib.sha256(raw).hexdigest() for raw in originals]
    assert sum(data["outcomes"].values()) == len(originals)
