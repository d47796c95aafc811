"""Journal, file sink, progress, report and logging set-up of the scheduler."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.scheduler import (
    START,
    AppendFile,
    Journal,
    Position,
    Progress,
    ResumeRefused,
    RunReport,
    configure_logging,
    params_digest,
    verbosity_level,
)

P = params_digest({"input": "a.mbox", "recipients": ["x"]})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def positions(n: int) -> list[Position]:
    return [Position(items=10 * (i + 1), offset=100 * (i + 1), digest=f"d{i}", batch=i) for i in range(n)]


def test_fresh_journal_then_resume_returns_last_commit(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        assert j.begin(P) is START and j.last() is None
        for p in positions(3):
            j.commit(p)
    j2 = Journal(tmp_path / "j")
    assert j2.begin(P, resume=True) == positions(3)[-1]
    assert not j2.finished
    j2.finish()
    j3 = Journal(tmp_path / "j")
    assert j3.begin(P, resume=True) == positions(3)[-1] and j3.finished
    j3.close()


def test_without_resume_an_old_journal_is_replaced(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        j.begin(P)
        j.commit(positions(1)[0])
    with Journal(tmp_path / "j") as j:
        assert j.begin(P) is START
    with Journal(tmp_path / "j") as j:
        assert j.begin(P, resume=True) is START


@pytest.mark.parametrize(
    "tail",
    [b'{"batch":3,"items":40,"k":"commit","offset":400}', b"\x00" * 30, b'{"k":"commit"}\t00000000\n'],
    ids=["cut-short", "zeros", "bad-checksum"],
)
def test_torn_tail_is_ignored_and_cut_before_appending(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "j"
    with Journal(path) as j:
        j.begin(P)
        for p in positions(3):
            j.commit(p)
    with open(path, "ab") as f:
        f.write(tail)
    with Journal(path) as j:
        assert j.begin(P, resume=True) == positions(3)[-1]
        j.commit(Position(items=99, offset=999, batch=9))
    assert tail not in path.read_bytes()
    with Journal(path) as j:
        assert j.begin(P, resume=True) == Position(items=99, offset=999, batch=9)


def test_other_parameters_refuse_resume(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        j.begin(P)
    with pytest.raises(ResumeRefused, match="parameters differ"):
        Journal(tmp_path / "j").begin(params_digest({"input": "b.mbox"}), resume=True)


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "j").write_bytes(b"From someone\n")
    with pytest.raises(ResumeRefused, match="not a pgpbulk journal"):
        Journal(tmp_path / "j").begin(P, resume=True)


def test_two_runs_cannot_share_a_journal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        j.begin(P)
        with pytest.raises(ResumeRefused, match="another run"):
            Journal(tmp_path / "j").begin(P, resume=True)
        with pytest.raises(ResumeRefused, match="another run"):
            Journal(tmp_path / "j").begin(P)


def test_commit_never_goes_backwards(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        j.begin(P)
        j.commit(Position(items=10, offset=100))
        with pytest.raises(ValueError, match="backwards"):
            j.commit(Position(items=5, offset=100))


def test_params_digest_is_canonical() -> None:
    assert params_digest({"a": 1, "b": [2]}) == params_digest({"b": [2], "a": 1})
    assert params_digest({"a": 1}) != params_digest({"a": 2})


def test_append_file_checkpoint_rewind_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "out"
    with AppendFile(path) as sink:
        sink.rewind(START)
        sink.write_batch([b"abc", b"def"])
        first = sink.checkpoint()
        assert first == (6, hashlib.sha256(b"abcdef").hexdigest())
        sink.write(b"lost")
    with AppendFile(path) as sink:
        sink.rewind(Position(items=2, offset=first[0], digest=first[1]))
        assert path.read_bytes() == b"abcdef"
        sink.write(b"gh")
        assert sink.checkpoint() == (8, hashlib.sha256(b"abcdefgh").hexdigest())
    with pytest.raises(ResumeRefused, match="shorter"):
        AppendFile(path).rewind(Position(offset=9))
    with pytest.raises(ResumeRefused, match="differ"):
        AppendFile(path).rewind(Position(offset=6, digest=hashlib.sha256(b"abcdeX").hexdigest()))


def test_progress_prints_plain_lines_every_interval_when_not_a_tty() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress(100, stream=out, interval=10, clock=clock) as p:
        for _ in range(35):
            clock.now += 1
            p.update(2, 1_000_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 10 s, 20 s, 30 s, and the final line
    assert lines[0].startswith("20/100 items (20.0%), 2.0 items/s, 1.00 MB/s, elapsed 0m10s, ETA 0m40s")
    assert lines[-1].startswith("70/100 items (70.0%)")


def test_progress_after_resume_counts_only_new_work_in_rates() -> None:
    clock, out = FakeClock(), io.StringIO()
    p = Progress(1000, stream=out, interval=5, clock=clock)
    p.begin(done_items=900)
    clock.now += 5
    p.update(50)
    assert out.getvalue().startswith("950/1000 items (95.0%), 10.0 items/s")


def test_quiet_progress_prints_nothing() -> None:
    out = io.StringIO()
    with Progress(10, stream=out, interval=0, quiet=True) as p:
        p.update(10)
    assert out.getvalue() == ""


def test_progress_bar_on_a_terminal() -> None:
    pytest.importorskip("tqdm")
    out = io.StringIO()
    with Progress(10, stream=out, bar=True, unit="msg") as p:
        assert p.mode == "bar"
        p.update(10, 5000)
    assert "10/10" in out.getvalue() and "msg/s" in out.getvalue()


def test_report_counts_and_rates() -> None:
    clock = FakeClock()
    report = RunReport(clock)
    report.add("rewrapped", 149)
    report.add("copied", 50)
    report.add_all(["rewrapped", "failed"])  # one per outcome given
    report.add_bytes(4_000_000, 4_100_000)
    clock.now += 2
    report.stop()
    clock.now += 100  # after stop: not counted
    assert report.as_dict(mode="rewrap") == {
        "items": 201, "outcomes": {"copied": 50, "failed": 1, "rewrapped": 150}, "bytes_in": 4_000_000,
        "bytes_out": 4_100_000, "elapsed_s": 2.0, "items_per_s": 100.5, "mb_per_s": 2.0, "mode": "rewrap",
    }


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_levels_and_single_handler(root_logger: logging.Logger) -> None:
    assert [verbosity_level(v) for v in (-1, 0, 1, 2, 5)] == [
        logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG,
    ]
    first, out = io.StringIO(), io.StringIO()
    configure_logging(0, first)
    configure_logging(1, out)  # replaces, does not stack
    logging.getLogger("engine.x").info("shown")
    logging.getLogger("engine.x").debug("hidden")
    assert first.getvalue() == ""
    assert out.getvalue() == "INFO MainProcess engine.x: shown\n"
