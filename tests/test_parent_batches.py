"""What the parent of a pooled archive job hands out, and how it starts the pool: an mbox scan that cuts its
own batches (:meth:`~engine.mail.mbox.MboxScan.cut`), the refs of each packed as one
:class:`~engine.mail.mbox.MboxRefs`, equal to those the scan yields one by one, cut where the pool cuts a
stream of refs, loaded as the refs load; the resource tracker started without ``site``."""

from __future__ import annotations

import ast
import itertools
import os
import pickle
from pathlib import Path

import pytest

from engine.mail import mbox
from engine.mail.item import MailItem
from engine.mail.mbox import MboxRefs, load_refs, scan_mbox
from engine.mail.source import open_source
from engine.scheduler.pool import _cut, run_batches
from tests import mailgen

VARIANTS = ("mboxrd", "mboxo", "mboxcl2")


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """40 generated messages, one with quoted ``From`` lines, and a truncated last one."""
    messages = [
        *mailgen.generate(seed=5, count=40, crlf_every=4),
        b"Subject: q\n\n>From a\n>>From b\nFrom c\n",
    ]
    path = tmp_path / "in.mbox"
    mbox.write_mbox(path, [MailItem(i, m) for i, m in enumerate(messages)])
    with open(path, "ab") as f:
        f.write(b"From last\nSubject: cut\n\nno newline at the end")
    return path


def _batches(
    path: Path, variant: str, size: int, nbytes: int | None, skip: int = 0
) -> list[tuple[MboxRefs, int]]:
    return list(scan_mbox(path, variant, skip).cut(size, nbytes))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("size", "nbytes"), [(1, None), (4, None), (7, 20_000), (1000, 30_000), (1000, None)]
)
def test_batches_hold_the_refs_of_the_scan_in_order(
    archive: Path, variant: str, size: int, nbytes: int | None
) -> None:
    refs = list(scan_mbox(archive, variant))
    batches = _batches(archive, variant, size, nbytes)
    assert all(type(b) is MboxRefs for b, _ in batches)
    assert [r for b, _ in batches for r in b] == refs and refs[-1].truncated and not refs[-2].truncated
    assert [b.first for b, _ in batches] == list(
        itertools.accumulate([0] + [len(b) for b, _ in batches[:-1]])
    )
    assert all(n == sum(r.length for r in b) for b, n in batches)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batches_end_where_the_pool_ends_a_stream_of_refs(archive: Path, variant: str) -> None:
    """After ``batch_size`` messages, or after the one whose length reaches the byte limit: the batches
    the pool makes of the refs one by one (``item_size``: their length)."""
    refs = list(scan_mbox(archive, variant))
    exact = refs[0].length + refs[1].length  # a batch that reaches the limit exactly ends there
    for batch_size, limit in [
        (1, None),
        (5, None),
        (6, 9_000),
        (1000, 40_000),
        (3, 1),
        (1000, exact),
        (1000, None),
    ]:
        plain = _cut(iter(refs), 0, batch_size, limit, lambda r: r.length)
        packed = _cut(scan_mbox(archive, variant), 0, batch_size, limit, lambda r: 1 / 0)
        assert [(i, list(b), n) for i, b, n in packed] == [(i, b, n) for i, b, n in plain]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_scan_from_message_skip_and_one_taken_in_both_ways(archive: Path, variant: str) -> None:
    refs = list(scan_mbox(archive, variant))
    assert list(scan_mbox(archive, variant, 17)) == refs[17:]
    assert [r for b, _ in _batches(archive, variant, 6, None, 17) for r in b] == refs[17:]
    assert [b.first for b, _ in _batches(archive, variant, 6, None, 17)][:2] == [17, 23]
    scan = scan_mbox(archive, variant, 3)
    assert next(scan) == refs[3]
    first, _ = next(scan.cut(5, None))
    assert list(first) == refs[4:9] and next(scan) == refs[9]  # the cut took 4..8, no more, no less
    assert list(scan_mbox(archive, variant, len(refs) + 5)) == []


def test_refs_index_pickle_and_load_as_the_refs_do(impl: str, archive: Path) -> None:
    for variant in VARIANTS:
        refs = list(scan_mbox(archive, variant))
        packed = [b for b, _ in _batches(archive, variant, 16, None)]
        last = packed[-1]
        assert (
            last[-1] == refs[-1]
            and last[0] == refs[last.first]
            and last[1:3] == refs[last.first + 1 : last.first + 3]
        )
        with pytest.raises(IndexError):
            last[len(last)]
        for b in packed:
            copy = pickle.loads(pickle.dumps(b))
            assert type(copy) is MboxRefs and list(copy) == list(b) and len(pickle.dumps(b)) < 3000
            assert load_refs(copy) == load_refs(list(b))
        assert [i for b in packed for i in load_refs(b)] == list(open_source(archive, variant))


def test_a_changed_file_fails_the_batch_as_it_fails_the_refs(archive: Path) -> None:
    from engine.errors import StructuralError

    batch, _ = _batches(archive, "mboxrd", 100, None)[0]
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(StructuralError, match="changed while it was read"):
        load_refs(batch)


def test_the_pool_sends_one_packed_batch_per_task(archive: Path) -> None:
    refs = list(scan_mbox(archive, "mboxrd"))
    for workers in (0, 2):
        batches = list(
            run_batches(scan_mbox(archive, "mboxrd"), _raws, workers=workers, batch_size=8, batched=True)
        )
        assert [b.start for b in batches] == list(range(0, len(refs), 8))
        assert [r for b in batches for r in b.results] == [i.raw for i in load_refs(refs)]


def _raws(refs: list[object]) -> list[bytes]:
    """A pool function: the messages of a batch, which must come packed (an MboxRefs)."""
    assert type(refs) is MboxRefs
    return [item.raw for item in load_refs(refs)]  # type: ignore[arg-type]


def test_the_source_hands_the_pool_a_scan_that_cuts_itself_from_any_message(archive: Path) -> None:
    source = open_source(archive)
    assert list(source.refs(5)) == list(scan_mbox(archive))[5:]
    assert hasattr(source.refs(5), "cut")


@pytest.mark.parametrize("resume", [False, True])
def test_a_pooled_job_on_an_mbox_is_fed_packed_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    """``run_job`` hands ``run_journaled`` the source's refs from the run's start (fresh or resumed), a
    scan that cuts its own batches; the output is that of the refs one by one."""
    import engine.mail.job as job
    from engine.mail.crypto import CryptoConfig
    from engine.mail.samples import write_archive
    from engine.scheduler import Interrupted
    from engine.scheduler import journal as journal_mod
    from tests.test_archive_cli import make_key

    sources: list[object] = []
    real = job.run_journaled

    def spy(source: object, *args: object, **kwargs: object) -> object:
        sources.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(job, "run_journaled", spy)
    _, cert = make_key(tmp_path, "alice")
    src = write_archive(tmp_path / "src.mbox", 30, 150_000, seed=4)
    dst = tmp_path / "dst"
    crypto = CryptoConfig(recipients=(cert.read_bytes(),))
    opts = job.JobOptions("encrypt")
    if resume:  # a run stopped after its first batch: the resume starts at message 8
        real_commit = journal_mod.Journal.commit

        def stop_after_first(self: journal_mod.Journal, position: journal_mod.Position) -> None:
            real_commit(self, position)
            raise KeyboardInterrupt

        monkeypatch.setattr(journal_mod.Journal, "commit", stop_after_first)
        with pytest.raises(Interrupted):
            job.run_job(src, dst, opts, crypto, workers=2, batch_size=8)
        monkeypatch.setattr(journal_mod.Journal, "commit", real_commit)
    rep = job.run_job(src, dst, opts, crypto, workers=2, batch_size=8, resume=resume)
    assert rep.committed and rep.messages == 30
    source = sources[-1]
    assert callable(source) and hasattr(source(0), "cut")
    assert [i.index for i in mbox.read_mbox(dst)] == list(range(30))


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_the_resource_tracker_starts_without_site_and_the_pool_works() -> None:
    """``prestart`` starts multiprocessing's resource tracker with ``-S`` (it needs no site-packages)."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from engine.scheduler.start import prestart, pool_context\n"
        "prestart(2, None, ())\n"
        "from multiprocessing import resource_tracker as r\n"
        "print(open(f'/proc/{r._resource_tracker._pid}/cmdline').read().split(chr(0)))\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "with ProcessPoolExecutor(2, mp_context=pool_context()) as ex:\n"
        "    print(sorted(ex.map(abs, [-1, -2, 3])))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PGPBULK_START_METHOD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    cmdline, pooled = out.stdout.splitlines()
    assert "-S" in ast.literal_eval(cmdline) and pooled == "[1, 2, 3]"
    assert "resource_tracker" not in out.stderr
