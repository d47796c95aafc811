"""WKD build, the parent's side of the pool: certificate runs, tasks, their counts and their failures."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from engine.scheduler import Failed, WorkerCrashed, run_ordered
from engine.wkd import build as wkd_build
from engine.wkd import publish, sources
from engine.wkd.build import BuildOptions, Packed, select_packed, select_work
from engine.wkd.sample import BASE_TIME, sample_keyring
from engine.wkd.sources import CertBlob, CertRun, SourceProblem, split_stream

NOW = BASE_TIME + 86400


def _split(data: bytes, **limits: int) -> list[CertBlob | CertRun | SourceProblem]:
    return list(split_stream(io.BufferedReader(io.BytesIO(data)), "s.gpg", **limits))  # type: ignore[arg-type]


def _expanded(items: list[CertBlob | CertRun | SourceProblem]) -> list[CertBlob | SourceProblem]:
    out: list[CertBlob | SourceProblem] = []
    for item in items:
        out += item.blobs() if isinstance(item, CertRun) else [item]
    return out


def _odd_keyring() -> bytes:
    """Plain keys around what the splitter takes packet by packet: a trust packet, a User Attribute,
    a key cut short at the end."""
    ring = sample_keyring(30, seed=3)
    first = _split(ring)[0]
    assert isinstance(first, CertBlob)
    attr = bytes([0xC0 | 17, 5, 1, 2, 3, 4, 5])
    trust = bytes([0xC0 | 12, 2, 0, 0])
    return ring + first.data + trust + attr + ring + first.data[:-7]


@pytest.mark.parametrize("chunk", [1 << 20, 3000])
@pytest.mark.parametrize("run", [2, 7, 128])
def test_runs_hold_the_certificates_the_splitter_cuts_one_by_one(
    monkeypatch: pytest.MonkeyPatch, chunk: int, run: int
) -> None:
    """Runs expand to the same certificates at the same offsets, problems in the same places, whatever
    the run length and across buffer refills; no run is longer than asked."""
    monkeypatch.setattr(sources, "_CHUNK", chunk)
    ring = _odd_keyring()
    one_by_one = _split(ring)
    runs = _split(ring, run_certs=run)
    assert any(isinstance(x, CertRun) for x in runs) and any(isinstance(x, SourceProblem) for x in runs)
    assert _expanded(runs) == one_by_one
    assert all(len(x.ends) <= run for x in runs if isinstance(x, CertRun))
    assert all(
        ring[b.offset : b.offset + len(b.data)] == b.data for b in _expanded(runs) if isinstance(b, CertBlob)
    )


def test_tasks_count_their_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publish, "_TASK_CERTS", 8)
    ring = _odd_keyring()
    items = [x for x in _split(ring, run_certs=5) if not isinstance(x, SourceProblem)]
    counts: Any = publish.deque()
    tasks = list(publish._tasks(items, counts))
    assert [len(_expanded(t)) for t in tasks] == list(counts)  # type: ignore[arg-type]
    assert sum(counts) == len(_expanded(items)) and len(tasks) > 1  # type: ignore[arg-type]
    assert all(n >= publish._TASK_CERTS for n in list(counts)[:-1])


def test_build_counts_every_key_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys read and the progress bar's count are the certificates, not the tasks."""

    class Progress:
        count = 0

        def update(self, items: int = 1) -> None:
            self.count += items

    monkeypatch.setattr(publish, "_TASK_CERTS", 8)
    ring = tmp_path / "r.gpg"
    ring.write_bytes(sample_keyring(50, seed=4))
    progress = Progress()
    report = publish.build(tmp_path / "w", [str(ring)], workers=0, now=NOW, progress=progress)
    assert report.keys == progress.count == 50


def _culprit(monkeypatch: pytest.MonkeyPatch, bad: CertBlob) -> None:
    """Make the selection of ``bad`` raise, as a bug would."""
    real = wkd_build._lean

    def lean(opts: BuildOptions, blob: CertBlob, *args: Any) -> Any:
        if blob == bad:
            raise RuntimeError("boom")
        return real(opts, blob, *args)

    monkeypatch.setattr(wkd_build, "_lean", lean)


def test_a_failing_certificate_costs_only_itself_as_in_the_pools_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task whose batch raises: each certificate alone, the culprit a "worker error" in its place;
    the same rows, returned bytes and skips, in order, as the pool's own item-by-item retry made."""
    blobs = [b for b in _expanded(_split(sample_keyring(12, seed=6))) if isinstance(b, CertBlob)]
    blobs += blobs[:3]  # the same keys again: their files are taken, their bytes come back
    _culprit(monkeypatch, blobs[5])

    def pool_way(root: Path) -> tuple[list, list, list]:
        opts = BuildOptions(frozenset(["example.org"]), now=NOW, root=str(root))
        rows, unwritten, skipped = [], [], []
        for res in run_ordered(blobs, lambda b: select_packed(opts, b), workers=0, batched=True):
            if isinstance(res, Failed):
                skipped.append(("worker error", res.reason))
            elif res is not None:
                unwritten += [len(rows) + i for i in res.unwritten]
                rows += res.rows
                skipped += res.skipped
        return rows, unwritten, skipped

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    want = pool_way(tmp_path / "a")
    opts = BuildOptions(frozenset(["example.org"]), now=NOW, root=str(tmp_path / "b"))
    got = select_work(
        opts, [CertRun("s.gpg", 0, b"".join(b.data for b in blobs[:4]), _ends(blobs[:4])), *blobs[4:]]
    )
    assert ("worker error", "RuntimeError: boom") in want[2] and want[1]
    assert (got.rows, got.unwritten, got.skipped) == want
    assert isinstance(got, Packed)


def _ends(blobs: list[CertBlob]) -> tuple[int, ...]:
    out, at = [], 0
    for b in blobs:
        at += len(b.data)
        out.append(at)
    return tuple(out)


def test_a_dead_worker_is_reported_in_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``WorkerCrashed.next_index`` counts certificates delivered (as when each was a pool item)."""

    def crashing(tasks: Iterator[list], fn: Any, **kwargs: Any) -> Iterator[Packed]:
        next(tasks)
        next(tasks)
        yield Packed()
        try:
            raise BrokenProcessPool("gone")
        except BrokenProcessPool as exc:
            raise WorkerCrashed(1, "BrokenProcessPool: gone") from exc

    monkeypatch.setattr(publish, "_TASK_CERTS", 8)
    monkeypatch.setattr(publish, "run_ordered", crashing)
    ring = tmp_path / "r.gpg"
    ring.write_bytes(sample_keyring(30, seed=4))
    with pytest.raises(WorkerCrashed) as info:
        publish.build(tmp_path / "w", [str(ring)], workers=0, now=NOW)
    counts: Any = publish.deque()
    next(publish._tasks(sources.iter_cert_blobs([str(ring)], run_certs=8), counts))  # type: ignore[arg-type]
    assert info.value.next_index == counts[0] > 1 and "BrokenProcessPool: gone" in str(info.value)
