"""Packed batch results: a worker's shard results travel as one :class:`ShardBatch` (columns), equal to the
list they pack; the sink and the journaled loop take them as they are, with the same output and counts."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import pytest

from engine.mail.item import MailItem
from engine.mail.report import Report
from engine.mail.sinks import ArchiveSink, Processed, ShardBatch, pack_shard_batch, to_shard
from engine.scheduler import START, AppendFile, Failed, Journal, RunReport, run_batches, run_journaled

OUTCOMES = ["encrypted", "copied", "passed", "encrypted", "not-ours", "encrypted"]


def _results(first: int = 5) -> list[Processed]:
    out = []
    for k, outcome in enumerate(OUTCOMES):
        i = first + k
        item = MailItem(i, b"", b"From x%d Thu Jan  1 00:00:00 1970\n" % i, 1000 * i, "/src/a.mbox")
        raw = b"From: a\nSubject: %d\n\nbody %d\nFrom here\n" % (i, i) * (k + 1)
        reason = {"copied": "non-ASCII: jörg ✉", "not-ours": 'quote " here'}.get(outcome)
        out.append(Processed.mbox(item, raw, "plain", outcome, f"{i:064x}", 900 + i, reason))
    return out


def test_a_packed_batch_equals_the_results_it_packs(tmp_path: Path) -> None:
    sharded = to_shard(str(tmp_path / "out.mbox"), _results())
    packed = pickle.loads(pickle.dumps(pack_shard_batch(sharded)))
    assert type(packed) is ShardBatch and len(packed) == len(sharded)
    assert list(packed) == sharded  # every field of every result, the item's too
    assert packed[-1] == sharded[-1] and packed[1:4] == sharded[1:4] and list(packed.outcomes) == OUTCOMES
    with pytest.raises(IndexError):
        packed[len(sharded)]
    assert packed.at == 0 and packed.length == sum(int.from_bytes(p.entry[:8], "big") for p in sharded)
    assert len(pickle.dumps(packed)) < len(pickle.dumps(sharded))


def test_results_a_column_cannot_carry_stay_a_list(tmp_path: Path) -> None:
    dst = str(tmp_path / "out.mbox")
    sharded = to_shard(dst, _results())
    other = to_shard(dst, _results(first=11))
    fresh = _results()  # chunks in the results themselves: not in a shard
    failed = [*sharded[:2], Failed(7, "boom")]
    gap = [*sharded[:2], sharded[3]]  # not consecutive messages
    two_shards = [*sharded, other[0]]  # consecutive, but in another shard
    for results in ([], fresh, failed, gap, two_shards):
        assert pack_shard_batch(results) is results


def _sink(dst: Path) -> tuple[ArchiveSink, Report]:
    report = Report("encrypt", "/src/a.mbox", str(dst), "mbox", "mbox")
    sink = ArchiveSink(dst, "mbox", report=report)
    sink.rewind(START)
    return sink, report


def test_the_sink_writes_and_counts_a_packed_batch_as_its_list(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, plain_report = _sink(tmp_path / "a" / "out.mbox")
    packed, packed_report = _sink(tmp_path / "b" / "out.mbox")
    for first in (0, len(OUTCOMES)):
        results = _results(first)
        plain.write_batch(to_shard(str(plain.path), results))
        batch = pack_shard_batch(to_shard(str(packed.path), results))
        assert type(batch) is ShardBatch
        packed.write_batch(batch)
    assert packed.checkpoint() == plain.checkpoint()
    for sink in (plain, packed):
        sink.close()
    assert packed.partial.read_bytes() == plain.partial.read_bytes()
    assert packed.records.read_bytes() == plain.records.read_bytes()
    assert not list((tmp_path / "b").glob("*.shard-*"))  # copied and handed back, then removed
    assert packed_report.to_dict() | {"destination": ""} == plain_report.to_dict() | {"destination": ""}
    assert packed_report.failures and packed_report.messages == 2 * len(OUTCOMES)


class Packed(Sequence[bytes]):
    """A packed form of a batch of bytes results, as a job's ``pack`` may make one."""

    def __init__(self, items: list[bytes]) -> None:
        self.items = items
        self.outcomes = ["packed"] * len(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        return self.items[i]


def pack_bytes(results: list[bytes]) -> Packed:
    return Packed(results)


def pack_fails(results: list[bytes]) -> Packed:
    raise RuntimeError("a bug in pack")


def test_a_failing_pack_sends_the_results_unpacked() -> None:
    items = [b"%d" % i for i in range(9)]
    batches = list(run_batches(items, bytes.upper, workers=2, batch_size=4, pack=pack_fails))
    assert all(type(b.results) is list for b in batches) and [x for b in batches for x in b.results] == items


def test_the_pool_packs_in_the_workers_only() -> None:
    items = [b"%d" % i for i in range(20)]
    pooled = list(run_batches(items, bytes.upper, workers=2, batch_size=4, pack=pack_bytes))
    inline = list(run_batches(items, bytes.upper, workers=0, batch_size=4, pack=pack_bytes))
    assert all(type(b.results) is Packed for b in pooled) and all(type(b.results) is list for b in inline)
    assert [x for b in pooled for x in b.results] == [x for b in inline for x in b.results] == items


def test_a_journaled_run_takes_packed_outcomes_at_their_word(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    sink = AppendFile(out)
    run = RunReport()
    items = [b"m%02d" % i for i in range(10)]

    def never(result: object) -> tuple[str, str]:
        raise AssertionError("a packed batch's items are not asked one by one")

    run_journaled(items, bytes.upper, sink, Journal(f"{out}.journal"), "p", workers=2, batch_size=3,
                  pack=pack_bytes, report=run, outcome=never, stop_on=never)  # fmt: skip
    sink.close()
    assert out.read_bytes() == b"".join(items).upper()
    assert run.as_dict()["outcomes"] == {"packed": len(items)}
