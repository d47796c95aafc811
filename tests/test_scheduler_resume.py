"""Crash and resume end to end: a journaled job killed (SIGKILL, Ctrl-C) and resumed gives identical output.

Run as a script, this module is the job: ``python tests/test_scheduler_resume.py OUT N WORKERS RESUME TAG``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.scheduler import (
    AppendFile,
    Interrupted,
    Journal,
    Progress,
    ResumeRefused,
    RunReport,
    WorkerCrashed,
    run_journaled,
)

N = 200
SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent


def render(i: int) -> bytes:
    """The work of one item: slow enough that a kill lands mid-run, output of varying length."""
    time.sleep(0.002)
    return f"{i:06d} {hashlib.sha256(str(i).encode()).hexdigest() * (1 + i % 3)}\n".encode()


def job(out: str, n: int, workers: int, resume: bool, tag: str = "a") -> None:
    """Render items 0..n-1 into ``out``, journaled in ``out.journal``."""
    sink = AppendFile(out)
    try:
        run_journaled(range(n), render, sink, Journal(out + ".journal"), {"n": n, "tag": tag},
                      resume=resume, workers=workers, batch_size=10)
    finally:
        sink.close()


def commits(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"k":"commit"')
    except FileNotFoundError:
        return 0


def start_job(out: Path, workers: int, resume: bool) -> subprocess.Popen[bytes]:
    """The job in a subprocess of its own session (so its whole process group can be killed)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [sys.executable, str(SCRIPT), str(out), str(N), str(workers), str(int(resume))]
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_commits(proc: subprocess.Popen[bytes], journal: Path, count: int) -> None:
    deadline = time.monotonic() + 20
    while commits(journal) < count:
        assert proc.poll() is None, "job ended before it could be interrupted"
        assert time.monotonic() < deadline, "job made no progress"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Output of an uninterrupted, in-process run."""
    out = tmp_path_factory.mktemp("ref") / "out"
    job(str(out), N, workers=0, resume=False)
    return out.read_bytes()


def test_sigkill_then_resume_gives_identical_output(tmp_path: Path, reference: bytes) -> None:
    out, journal = tmp_path / "out", tmp_path / "out.journal"
    proc = start_job(out, workers=2, resume=False)
    wait_for_commits(proc, journal, 4)
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its workers, as in a power cut
    proc.wait(10)
    assert b'"k":"done"' not in journal.read_bytes()
    assert len(out.read_bytes()) < len(reference)

    resumed = start_job(out, workers=2, resume=True)
    _, err = resumed.communicate(timeout=30)
    assert resumed.returncode == 0, err.decode()
    assert out.read_bytes() == reference
    assert b'"k":"done"' in journal.read_bytes()


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path, reference: bytes) -> None:
    out, journal = tmp_path / "out", tmp_path / "out.journal"
    proc = start_job(out, workers=2, resume=False)
    wait_for_commits(proc, journal, 3)
    os.kill(proc.pid, signal.SIGINT)  # the parent only; workers ignore SIGINT anyway
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err.decode()
    assert "--resume" in err.decode()
    # A clean stop commits what it wrote: the output ends exactly at the last journaled offset.
    last = Journal(journal)
    position = last.begin(_digest(), resume=True)
    last.close()
    assert 0 < position.offset == out.stat().st_size < len(reference)

    job(str(out), N, workers=1, resume=True)  # other worker count: allowed, same output
    assert out.read_bytes() == reference


def test_resume_with_other_parameters_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    job(str(out), 20, workers=0, resume=False, tag="a")
    with pytest.raises(ResumeRefused, match="parameters differ"):
        job(str(out), 20, workers=0, resume=True, tag="b")


def test_resume_of_a_finished_run_leaves_output_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    job(str(out), 20, workers=0, resume=False)
    before = out.read_bytes()
    os.utime(out, (0, 0))
    job(str(out), 20, workers=0, resume=True)
    assert out.read_bytes() == before
    assert out.stat().st_mtime == 0


def test_damaged_output_prefix_is_refused_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    job(str(out), 20, workers=0, resume=False)
    journal = tmp_path / "out.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]))  # as if killed before "done"
    data = bytearray(out.read_bytes())
    data[5] ^= 1
    out.write_bytes(bytes(data))
    with pytest.raises(ResumeRefused, match="differ from the journal"):
        job(str(out), 20, workers=0, resume=True)


def crash_once(item: tuple[int, str]) -> bytes:
    """``render``, but the first time item 57 is seen its worker process dies."""
    i, marker = item
    if i == 57 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return render(i)


def test_dead_worker_leaves_a_resumable_state(tmp_path: Path, reference: bytes) -> None:
    out, marker = tmp_path / "out", str(tmp_path / "crashed")
    items = [(i, marker) for i in range(N)]

    def run(resume: bool) -> None:
        with AppendFile(out) as sink:
            run_journaled(items, crash_once, sink, Journal(f"{out}.journal"), "p", resume=resume,
                          workers=2, batch_size=10)

    with pytest.raises(WorkerCrashed, match="--resume") as info:
        run(resume=False)
    assert info.value.next_index <= 50
    assert len(out.read_bytes()) < len(reference)
    run(resume=True)
    assert out.read_bytes() == reference


def test_report_and_progress_of_a_journaled_run(tmp_path: Path) -> None:
    out, lines = tmp_path / "out", io.StringIO()
    report = RunReport()
    with AppendFile(out) as sink:
        run_journaled([b"a" * 10, b"b" * 20, b"c", b"", b"dd"], bytes.upper, sink, Journal(f"{out}.journal"),
                      "p", workers=0, batch_size=2, report=report, progress=Progress(5, stream=lines),
                      outcome=lambda r: "empty" if not r else "upper")
    assert out.read_bytes() == b"A" * 10 + b"B" * 20 + b"CDD"
    numbers = report.as_dict()
    assert numbers["outcomes"] == {"empty": 1, "upper": 4}
    assert numbers["bytes_in"] == numbers["bytes_out"] == 33
    assert lines.getvalue().startswith("5/5 items (100.0%)")


class _FailingSink(AppendFile):
    """Checkpoints fail from the third on (a full disk, say); writes and checkpoints never overlap."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.checkpoints, self.busy = 0, False

    def write_batch(self, results: list[object]) -> None:
        assert not self.busy, "write_batch while a checkpoint is running"
        super().write_batch(results)

    def checkpoint(self) -> tuple[int, str]:
        self.busy = True
        try:
            time.sleep(0.01)
            self.checkpoints += 1
            if self.checkpoints > 2:
                raise OSError(28, "No space left on device")
            return super().checkpoint()
        finally:
            self.busy = False


def test_commits_run_beside_the_loop_and_their_errors_surface(tmp_path: Path) -> None:
    """Commits run in a helper thread while the next batch is awaited: the sink is never used by two
    threads at once, a failed checkpoint ends the run with its error, and the journal claims only what
    was made durable."""
    out = tmp_path / "out"
    sink = _FailingSink(out)
    with pytest.raises(OSError, match="No space"):
        run_journaled([b"x%03d" % i for i in range(50)], bytes.upper, sink, Journal(f"{out}.journal"), "p",
                      workers=0, batch_size=5)  # fmt: skip
    sink.close()
    assert commits(Path(f"{out}.journal")) == 2
    with AppendFile(out) as again:  # resumes after the two durable batches
        position = run_journaled([b"x%03d" % i for i in range(50)], bytes.upper, again,
                                 Journal(f"{out}.journal"), "p", workers=0, batch_size=5, resume=True)  # fmt: skip
    assert position.items == 50 and out.read_bytes() == b"".join(b"X%03d" % i for i in range(50))


class _SlowSnapshotSink(AppendFile):
    """Takes batches while a snapshot is made durable (slowly: a slow disk)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queued: list[bytes] = []
        self.commits: list[int] = []

    def write_batch(self, results: list[object]) -> None:
        self.queued += results  # type: ignore[arg-type]

    def prepare_checkpoint(self) -> list[bytes]:
        snapshot, self.queued = self.queued, []
        return snapshot

    def finish_checkpoint(self, snapshot: list[bytes]) -> tuple[int, str]:
        time.sleep(0.03)
        super().write_batch(snapshot)
        self.commits.append(len(snapshot))
        return super().checkpoint()


def test_a_sink_with_snapshots_keeps_taking_batches_and_commits_coalesce(tmp_path: Path) -> None:
    out = tmp_path / "out"
    items = [b"x%03d" % i for i in range(60)]
    sink = _SlowSnapshotSink(out)
    with sink:
        position = run_journaled(items, bytes.upper, sink, Journal(f"{out}.journal"), "p", workers=0,
                                 batch_size=2)  # fmt: skip
    assert position.items == 60 and out.read_bytes() == b"".join(x.upper() for x in items)
    assert sum(sink.commits) == 60 and len(sink.commits) < 30  # several batches per commit
    assert all(n % 2 == 0 for n in sink.commits)  # always at a batch boundary
    lines = Path(f"{out}.journal").read_text().splitlines()
    items_committed = [json.loads(x.split("\t")[0])["items"] for x in lines if '"k":"commit"' in x]
    assert items_committed == sorted(items_committed) and items_committed[-1] == 60


def _digest() -> str:
    from engine.scheduler import params_digest

    return params_digest({"n": N, "tag": "a"})


if __name__ == "__main__":
    try:
        job(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bool(int(sys.argv[4])))
    except Interrupted as exc:
        print(exc, file=sys.stderr)
        sys.exit(130)
