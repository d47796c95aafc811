"""How :func:`~engine.mail.job.run_job` feeds the pool: batch size and batches in flight per worker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine.mail.job as job
from engine.mail.crypto import CryptoConfig
from engine.mail.maildir import MaildirWriter
from engine.mail.mbox import read_mbox
from engine.mail.samples import write_archive
from tests.test_archive_cli import make_key


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, source: str = "mbox", card: bool = False, **kw: Any
) -> tuple[dict[str, Any], job.Report]:
    """Encrypt 40 messages with ``run_job``; the pool options it chose, and its report."""
    seen: dict[str, Any] = {}
    real = job.run_journaled

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(job, "run_journaled", spy)
    if card:  # as card_session yields it when a key is on a card: a broker (here a stand-in)

        @contextlib.contextmanager
        def session(config: CryptoConfig) -> Iterator[tuple[CryptoConfig, object]]:
            yield config, object()

        monkeypatch.setattr(job, "card_session", session)
        monkeypatch.setattr(job, "broker_report", lambda broker: None)
    _, cert = make_key(tmp_path, "alice")
    src = write_archive(tmp_path / "src.mbox", 40, 200_000, seed=3)
    if source == "maildir":
        writer = MaildirWriter(tmp_path / "src")
        for i, item in enumerate(read_mbox(src)):
            writer.write(item.raw, index=i)
        src = tmp_path / "src"
    dst = tmp_path / "dst"
    rep = job.run_job(
        src, dst, job.JobOptions("encrypt"), CryptoConfig(recipients=(cert.read_bytes(),)), **kw
    )
    assert rep.messages == 40 and rep.committed and rep.outcomes["encrypted"] > 30
    if kw.get("out_fmt", "mbox") == "mbox":
        assert [m.index for m in read_mbox(dst)] == list(range(40))
    return seen, rep


@pytest.mark.parametrize(
    ("workers", "source", "out", "card", "depth"),
    [(2, "mbox", "mbox", False, 2 * job.SHARD_DEPTH), (1, "mbox", "mbox", False, None),
     (2, "mbox", "maildir", False, None), (2, "maildir", "mbox", False, None), (2, "mbox", "mbox", True, None)],
)  # fmt: skip
def test_runs_whose_tasks_and_results_are_small_keep_more_batches_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, source: str, out: str, card: bool,
    depth: int | None,
) -> None:  # fmt: skip
    """An mbox read by the workers into shard files (refs out, records back) keeps SHARD_DEPTH batches
    per worker in flight, so a slow batch no longer leaves the other worker idle; runs whose tasks or
    results carry the messages keep the pool's default (memory), and so do card runs (a Ctrl-C waits
    for the batches in flight, which wait on the card)."""
    seen, _ = _run(
        tmp_path, monkeypatch, source=source, card=card, out_fmt=out, workers=workers, batch_size=4
    )
    assert seen["max_in_flight"] == depth
    assert seen["batch_size"] == 4


@pytest.mark.parametrize(("card", "size"), [(False, job.BATCH_SIZE), (True, job.CARD_BATCH_SIZE)])
def test_default_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, card: bool, size: int) -> None:
    seen, _ = _run(tmp_path, monkeypatch, card=card, workers=2)
    assert seen["batch_size"] == size
    assert job.CARD_BATCH_SIZE < job.BATCH_SIZE


@pytest.mark.parametrize(
    "words",
    [["encrypt", "-r", "cert"], ["decrypt", "--key", "key"], ["reencrypt", "-r", "cert", "--key", "key"]],
)
def test_the_command_line_leaves_the_batch_size_to_the_job(words: list[str]) -> None:
    """No ``--batch-size``: the job chooses (by the keys, which the parser does not know)."""
    from engine.cli import _mail_parser

    assert _mail_parser().parse_args([*words, "src", "-o", "dst"]).batch_size is None
    assert _mail_parser().parse_args([*words, "src", "-o", "dst", "--batch-size", "7"]).batch_size == 7
