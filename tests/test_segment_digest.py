"""The segment digest of an mbox output (XXH3-128, or SHA-256 cut to 16 bytes without ``xxhash``): what
resume checks the kept prefix of ``DST.partial`` with, and what ``--verify``'s re-read compares. A flipped
byte is caught by both; a journal written by the SHA-256 format, or with the other segment hash, is
refused with a message that says to start afresh."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from engine.mail.crypto import CryptoConfig
from engine.mail.job import JobOptions, run_job, verify_output
from engine.mail.samples import write_archive
from engine.mail.sinks import ArchiveSink, partial_of, read_records, records_of
from engine.scheduler import AppendFile, Interrupted, ResumeRefused
from engine.scheduler.journal import START, Position, _line
from engine.scheduler.sink import SEGMENTED, available_segment_hash, segment_entry, segment_hash
from tests.test_archive_cli import make_key, pgpbulk

COUNT = 40


class Run(NamedTuple):
    src: Path
    dst: Path
    pub: Path
    crypto: CryptoConfig

    @property
    def journal(self) -> Path:
        return self.dst.with_name(self.dst.name + ".journal")

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line.split("\t")[0]) for line in self.journal.read_text().splitlines()]

    def last_commit(self) -> dict[str, object]:
        return [r for r in self.lines() if r["k"] == "commit"][-1]


class _StopAfter:
    """A progress display that presses Ctrl-C after ``batches`` batches (some of them journaled)."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def begin(self, done_items: int = 0, done_bytes: int = 0) -> None:
        pass

    def update(self, items: int = 1, nbytes: int = 0) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def close(self) -> None:
        pass


def _interrupted(tmp_path: Path, workers: int = 1) -> Run:
    """An encrypt run into an mbox, interrupted after 5 batches of 4 (each one journaled); without
    ``--verify``, so that wrapped messages take the worker's fast path (:meth:`Processed.sealed`)."""
    _, pub = make_key(tmp_path, "alice")
    src = write_archive(tmp_path / "src.mbox", COUNT, 120_000, seed=7)
    run = Run(src, tmp_path / "enc.mbox", pub, CryptoConfig(recipients=(pub.read_bytes(),)))
    with pytest.raises(Interrupted):
        _resume(run, resume=False, verify=False, progress=_StopAfter(5), workers=workers)
    assert 0 < int(run.last_commit()["items"]) < COUNT
    return run


def _resume(run: Run, *, resume: bool = True, verify: bool = True, workers: int = 1, **kw: object) -> object:
    """Run (resume) the job, by default with ``--verify`` (not a run parameter: a resume may add it)."""
    opts = JobOptions("encrypt", verify=verify)
    return run_job(run.src, run.dst, opts, run.crypto, workers=workers, batch_size=4, checkpoint_seconds=0,
                   resume=resume, **kw)  # type: ignore[arg-type]  # fmt: skip


def _kept(run: Run) -> tuple[bytes, list[dict[str, object]]]:
    """The journaled prefix of ``DST.partial`` and its records."""
    commit = run.last_commit()
    records = list(read_records(records_of(run.dst)))[: int(commit["items"])]  # type: ignore[call-overload]
    return partial_of(run.dst).read_bytes()[: int(commit["offset"])], records  # type: ignore[call-overload]


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def test_the_segment_hash_is_xxh3_128_else_truncated_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    xxhash = pytest.importorskip("xxhash")
    data = bytes(range(256)) * 200
    assert segment_hash.name == "xxh3-128" and segment_hash.digest(data) == xxhash.xxh3_128_digest(data)
    monkeypatch.setitem(sys.modules, "xxhash", None)  # as if it were not installed
    name, new = available_segment_hash()
    assert name == "sha256-128"
    hasher = new(data[:1000])
    hasher.update(memoryview(data)[1000:])
    assert hasher.digest() == new(data).digest() == hashlib.sha256(data).digest()[:16]


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_run_resumes_and_verifies_with_the_segment_digest(tmp_path: Path, workers: int) -> None:
    run = _interrupted(tmp_path, workers)
    prefix, records = _kept(run)
    assert run.lines()[0]["seg"] == segment_hash.name
    assert str(run.last_commit()["digest"]).startswith(f"{SEGMENTED}{segment_hash.name}:")
    at = 0
    for r in records:  # each record holds its entry's length and segment digest
        w = int(r["w"])  # type: ignore[call-overload]
        assert r["wsha"] == segment_hash.digest(prefix[at : at + w]).hex()
        at += w
    assert at == len(prefix)
    rep = _resume(run, workers=workers)
    assert rep.committed and rep.verify["ok"] and rep.messages == COUNT  # type: ignore[attr-defined]
    assert run.dst.read_bytes().startswith(prefix)


def test_a_flipped_byte_in_the_kept_output_is_refused_at_resume(tmp_path: Path) -> None:
    run = _interrupted(tmp_path)
    prefix, records = _kept(run)
    _flip(partial_of(run.dst), len(prefix) - int(records[-1]["w"]) // 2)  # type: ignore[call-overload]
    with pytest.raises(ResumeRefused, match="differ from the journal"):
        _resume(run)


def test_a_flipped_byte_is_named_by_the_verify_reread(tmp_path: Path) -> None:
    run = _interrupted(tmp_path)
    prefix, records = _kept(run)
    out = tmp_path / "kept.mbox"
    out.write_bytes(prefix)
    assert verify_output(out, "mbox", records)["ok"]  # type: ignore[arg-type]
    third = sum(int(r["w"]) for r in records[:3])  # type: ignore[call-overload]
    _flip(out, third + int(records[3]["w"]) // 2)  # type: ignore[call-overload]  # in message 3's body
    result = verify_output(out, "mbox", records)  # type: ignore[arg-type]
    assert result["mismatches"] == [3] and not result["ok"]


def test_a_journal_of_the_sha256_format_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted run of the previous format (journal version 1, segments hashed with SHA-256, records
    with 64-digit ``wsha``) is refused with a message to start afresh, by the job and by the CLI."""
    run = _interrupted(tmp_path)
    prefix, records = _kept(run)
    lines = run.lines()
    entries, at = [], 0
    for r in records:
        w = int(r["w"])  # type: ignore[call-overload]
        r["wsha"] = hashlib.sha256(prefix[at : at + w]).hexdigest()
        entries.append(segment_entry(w, bytes.fromhex(str(r["wsha"]))))
        at += w
    lines[0] = {"k": "begin", "v": 1, "params": lines[0]["params"]}
    commits = [r for r in lines if r["k"] == "commit"]
    commits[-1]["digest"] = SEGMENTED + hashlib.sha256(b"".join(entries)).hexdigest()
    run.journal.write_bytes(b"".join(_line(r) for r in [lines[0], commits[-1]]))
    records_of(run.dst).write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    with pytest.raises(ResumeRefused, match=r"journal version 1 .*start afresh"):
        _resume(run)
    code, _, err = pgpbulk(
        capsys, "encrypt", str(run.src), "-o", str(run.dst), "-r", str(run.pub), "--resume"
    )
    assert code == 2 and "journal version 1" in err and "start afresh" in err
    assert partial_of(run.dst).read_bytes().startswith(prefix)  # refused before anything was cut


def test_a_segmented_digest_of_another_hash_is_refused(tmp_path: Path) -> None:
    """:class:`AppendFile` alone (without a journal) refuses a digest made with SHA-256 segments."""
    path, chunks = tmp_path / "out", [b"one\n", b"two two\n"]
    path.write_bytes(b"".join(chunks))
    segments = [(len(c), hashlib.sha256(c).digest()) for c in chunks]
    old = SEGMENTED + hashlib.sha256(b"".join(segment_entry(n, d) for n, d in segments)).hexdigest()
    with pytest.raises(ResumeRefused, match=r"hashed with sha256.*start afresh"):
        AppendFile(path, segmented=True).rewind(Position(2, path.stat().st_size, old), segments)
    f = AppendFile(path, segmented=True)
    f.rewind(START)
    f.write_segments(chunks, [segment_entry(len(c), segment_hash.digest(c)) for c in chunks])
    f.write(b"three\n")  # hashed by the writer
    chunks.append(b"three\n")
    position = Position(3, *f.checkpoint())
    f.close()
    AppendFile(path, segmented=True).rewind(position, [(len(c), segment_hash.digest(c)) for c in chunks])


def test_without_xxhash_the_fallback_writes_resumes_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``xxhash`` segments are hashed with SHA-256 cut to 16 bytes, named in the journal: a run
    interrupted (or finished but not renamed into place) that way is refused by a pgpbulk with xxhash,
    before anything is cut, verified or removed."""
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "xxhash", None)  # as if it were not installed
        name, new = available_segment_hash()
        patched.setattr(segment_hash, "name", name)
        patched.setattr(segment_hash, "new", new)
        run = _interrupted(tmp_path)
        prefix, records = _kept(run)
        assert run.lines()[0]["seg"] == "sha256-128"
        first = int(records[0]["w"])  # type: ignore[call-overload]
        assert records[0]["wsha"] == hashlib.sha256(prefix[:first]).hexdigest()[:32]
        saved = {p: p.read_bytes() for p in (run.journal, records_of(run.dst), partial_of(run.dst))}
        rep = _resume(run)
        assert rep.committed and rep.verify["ok"] and rep.messages == COUNT  # type: ignore[attr-defined]
        assert run.dst.read_bytes().startswith(prefix)
        run.dst.unlink()
        patched.setattr(ArchiveSink, "commit", _crash)
        with pytest.raises(OSError, match="crashed"):
            _resume(run, resume=False)  # finished ("done" journaled), not renamed into place
        finished = {p: p.read_bytes() for p in saved}
    if segment_hash.name == "sha256-128":  # pragma: no cover - xxhash is not installed here
        return
    for state in (saved, finished):
        for path, data in state.items():
            path.write_bytes(data)
        with pytest.raises(ResumeRefused, match=r"hashed its output with sha256-128.*xxh3-128.*start afresh"):
            _resume(run)
        assert {p: p.read_bytes() for p in state} == state  # nothing cut, removed or renamed


def _crash(self: ArchiveSink) -> None:
    raise OSError("crashed before the rename")
