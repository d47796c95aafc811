"""The archive fast path: a segmented output digest that still catches damage on resume, and the
``--verify`` self-check with a known session key that still catches a changed byte anywhere."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from engine.mail.crypto import CryptoConfig, current, init_worker
from engine.mail.pgpmime import unwrap, wrap
from engine.openpgp import keygen
from engine.scheduler import AppendFile, ResumeRefused
from engine.scheduler.journal import START, Position
from engine.scheduler.sink import segment_entry, segment_hash


def _written(path: Path, chunks: list[bytes]) -> tuple[Position, list[tuple[int, bytes]]]:
    f = AppendFile(path, segmented=True)
    f.rewind(START)
    segs = [(len(c), segment_hash.digest(c)) for c in chunks]
    f.write_segments([b"".join(chunks)], [segment_entry(n, s) for n, s in segs])
    offset, digest = f.checkpoint()
    f.close()
    return Position(len(chunks), offset, digest), segs


def test_segmented_append_file_resumes_and_detects_damage(tmp_path: Path) -> None:
    path = tmp_path / "out"
    pos, segs = _written(path, [b"one\n", b"two two\n", b"three\n"])
    with open(path, "ab") as f:
        f.write(b"written after the checkpoint")
    f2 = AppendFile(path, segmented=True)
    f2.rewind(pos, segs)
    f2.write(b"four\n")
    f2.close()
    assert path.read_bytes() == b"one\ntwo two\nthree\nfour\n"
    pos, segs = _written(path, [b"one\n", b"two two\n"])
    with pytest.raises(ResumeRefused):  # a segment list that is not the journaled one
        AppendFile(path, segmented=True).rewind(pos, segs[:1])
    path.write_bytes(b"one\ntwo twO\n")
    with pytest.raises(ResumeRefused):  # the file changed
        AppendFile(path, segmented=True).rewind(pos, segs)


def test_self_check_catches_any_changed_byte() -> None:
    cert = keygen.export(keygen.generate("Alice <alice@example.org>", "ed25519"), armor=False)
    init_worker(CryptoConfig(recipients=(cert,)))
    st = current()
    raw = b"From: a@example.org\nTo: b@example.org\nSubject: s\n\n" + b"body line\n" * 200
    out = wrap(raw, st.encrypt_checkable)
    assert unwrap(out, st.open_with_last_key) == raw
    begin, end = out.index(b"-----BEGIN PGP MESSAGE-----") + 40, out.index(b"-----END PGP")
    spots = [i for i in range(begin, end, 53) if out[i] not in b"\r\n="]
    assert spots[0] < begin + 120  # the PKESK too, not only the data packet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in spots:
            bad = out[:i] + (b"A" if out[i] != ord("A") else b"B") + out[i + 1 :]
            with pytest.raises(Exception):  # noqa: B017 - any failure is a caught corruption
                unwrap(bad, st.open_with_last_key)


def test_shards_are_private_copied_in_order_reused_and_removed(tmp_path: Path) -> None:
    """Workers on a pool leave each batch's mbox chunks in a shard file beside DST (0600); the sink
    copies them into the output in order, keeps the segmented digest, hands the shards back for reuse
    (overwritten in place by a later batch) and removes them at the end."""
    from engine.mail.item import MailItem
    from engine.mail.sinks import ArchiveSink, Processed, to_shard

    dst = tmp_path / "out.mbox"
    raws = [b"From: a\n\nbody %d\nFrom here\n" % i for i in range(7)]

    def processed(i: int) -> Processed:
        item = MailItem(i, b"", b"From x Thu Jan  1 00:00:00 1970\n", 0, "src")
        return Processed.mbox(item, raws[i], "plain", "copied", "00", len(raws[i]), None)

    batches = [[processed(i) for i in range(0, 4)], [processed(i) for i in range(4, 7)]]
    sink = ArchiveSink(dst, "mbox")
    sink.rewind(START)  # before the workers start: it removes stale shards
    expected = b"".join(p.chunk for b in batches for p in b)
    sharded = [to_shard(str(dst), b) for b in batches]
    shards = [Path(b[0].shard) for b in sharded]  # in the order they were made
    assert sorted(tmp_path.glob("out.mbox.shard-*")) == sorted(shards) and all(
        p.stat().st_mode & 0o777 == 0o600 for p in shards
    )
    assert all(not p.chunk and p.shard for b in sharded for p in b)
    sink.write_batch(sharded[0])
    sink.write_batch([*sharded[1][:1], batches[1][1], *sharded[1][2:]])  # a chunk carried inline too
    assert sorted(tmp_path.glob("out.mbox.shard-*")) == sorted(
        shards
    )  # copied and handed back at the checkpoint
    offset, digest = sink.checkpoint()
    assert sorted(tmp_path.glob("out.mbox.shard-*")) == sorted(p.with_name(p.name + ".free") for p in shards)
    later = [processed(2)]  # shorter than the first batch: the reused shard keeps an unread old tail
    again = to_shard(str(dst), later)
    assert again[0].shard == str(shards[0]) and shards[0].stat().st_size == len(
        b"".join(p.chunk for p in batches[0])
    )
    assert shards[0].read_bytes().startswith(later[0].chunk) and shards[0].stat().st_mode & 0o777 == 0o600
    sink.write_batch(again)
    offset, digest = sink.checkpoint()
    sink.close()
    assert not list(tmp_path.glob("out.mbox.shard-*"))
    expected += later[0].chunk
    assert sink.partial.read_bytes() == expected and offset == len(expected)
    segs = [(len(p.chunk), segment_hash.digest(p.chunk)) for b in [*batches, later] for p in b]
    AppendFile(sink.partial, segmented=True).rewind(Position(8, offset, digest), segs)  # digest as usual
    to_shard(str(dst), batches[0])  # a shard left by a killed run: gone at the next rewind or close
    sink.close()
    assert not list(tmp_path.glob("out.mbox.shard-*"))


@pytest.mark.parametrize(
    "reason",
    [None, "plain reason", 'quote " and backslash \\', "non-ASCII: jörg ✉", "control\tchar\n"],
)
def test_mbox_record_equals_the_json_reference(reason: str | None) -> None:
    """``Processed.mbox`` writes its record from a template (the worker's hot path): the bytes must equal
    what ``json.dumps`` makes of :meth:`Processed._record` plus the chunk's length and segment digest."""
    from engine.mail.item import MailItem
    from engine.mail.sinks import Processed, _line

    raw = b"From: a\n\nbody\nFrom here\n"
    item = MailItem(12, b"", b"From x Thu Jan  1 00:00:00 1970\n", 345, 'dir/"mail".mbox')
    p = Processed.mbox(item, raw, "plain", "copied", "ab" * 32, 99, reason, "cd" * 32)
    want = _line(p._record(None, len(raw)) | {"w": len(p.chunk), "wsha": segment_hash.digest(p.chunk).hex()})
    assert p.record == want


def _outside_armor(raw: bytes) -> bytes:
    begin, end = raw.find(b"-----BEGIN PGP MESSAGE-----"), raw.find(b"-----END PGP MESSAGE-----")
    return raw if begin < 0 else raw[:begin] + raw[end:]


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("batch_fails", [False, True])
def test_batch_encryption_equals_one_by_one(
    monkeypatch: pytest.MonkeyPatch, batch_fails: bool, verify: bool
) -> None:
    """``encrypt`` encrypts a batch's entities in one call (several CFB chains side by side), with
    ``--verify`` checking each result as the one-message path does: every kind of message, LF and CRLF,
    gets the outcome, record and MIME structure of the one-message path and decrypts to its original;
    when the batch call fails, each message goes the one-message way."""
    from engine.mail import samples
    from engine.mail.item import MailItem
    from engine.mail.job import JobOptions, _work_item, work_batch
    from engine.openpgp import message
    from engine.openpgp.provider import InProcessKeyProvider

    key = keygen.generate("Alice <alice@example.org>", "ed25519")
    init_worker(CryptoConfig(recipients=(keygen.export(key.public(), armor=False),)))
    if batch_fails:
        monkeypatch.setattr(type(current()), "encrypt_many", lambda self, entities: 1 / 0)
        monkeypatch.setattr(type(current()), "encrypt_many_checkable", lambda self, entities: 1 / 0)
    raws = samples.generate(seed=7, count=45)
    items = [MailItem(i, raw, b"From x@y Thu Jan  1 00:00:00 1970\n", 0) for i, raw in enumerate(raws)]
    opts = JobOptions("encrypt", verify=verify)
    batch = work_batch(opts, items, out_fmt="")
    single = [_work_item(opts, item, "") for item in items]
    assert [p.outcome for p in batch].count("encrypted") > 20
    provider = InProcessKeyProvider([key])
    for item, b, s in zip(items, batch, single, strict=True):
        assert (b.mail_class, b.outcome, b.sha256, b.reason) == (s.mail_class, s.outcome, s.sha256, s.reason)
        assert _outside_armor(b.item.raw) == _outside_armor(s.item.raw)
        if b.outcome == "encrypted":
            assert unwrap(b.item.raw, lambda a: message.decrypt(a, provider).plaintext) == item.raw
        else:
            assert b.item.raw == item.raw


def test_batch_self_check_catches_a_damaged_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--verify`` a batch result that does not decrypt back to its original (one byte of its
    ciphertext changed after encryption) is copied unchanged with "self-check failed"; the rest pass."""
    from engine.mail.item import MailItem
    from engine.mail.job import JobOptions, work_batch

    cert = keygen.export(keygen.generate("Alice <alice@example.org>", "ed25519").public(), armor=False)
    init_worker(CryptoConfig(recipients=(cert,)))
    real = type(current()).encrypt_many_checkable

    def damage_third(self, entities):  # type: ignore[no-untyped-def]
        out = real(self, entities)
        armored, opener = out[2]
        at = armored.index(b"\n\n") + 300  # inside the base64 of the encrypted data
        swapped = b"A" if armored[at : at + 1] != b"A" else b"B"
        out[2] = (armored[:at] + swapped + armored[at + 1 :], opener)
        return out

    monkeypatch.setattr(type(current()), "encrypt_many_checkable", damage_third)
    raws = [
        b"From: a@example.org\nTo: b@example.org\nSubject: %d\n\n" % i + b"body line\n" * 300
        for i in range(6)
    ]
    items = [MailItem(i, raw, b"From x@y Thu Jan  1 00:00:00 1970\n", 0) for i, raw in enumerate(raws)]
    out = work_batch(JobOptions("encrypt", verify=True), items, out_fmt="")
    assert [(p.outcome, p.reason) for p in out] == [("encrypted", None)] * 2 + [
        ("copied", "self-check failed")
    ] + [("encrypted", None)] * 3
    assert out[2].item.raw == raws[2]


@pytest.mark.parametrize("sharded", [False, True])
def test_batch_mbox_entries_equal_one_by_one(tmp_path: Path, sharded: bool) -> None:
    """For an mbox sink the batch path builds each wrapped message's entry from its pieces (in a shard,
    the armored block written without a copy): same records but for the ciphertext's length and hash,
    same entry outside the armor, a segment entry that matches the bytes, and the original back."""
    import json

    from engine.mail import samples
    from engine.mail.item import MailItem
    from engine.mail.job import JobOptions, _work_item, work_batch
    from engine.mail.mbox import unquote
    from engine.openpgp import message
    from engine.openpgp.provider import InProcessKeyProvider

    key = keygen.generate("Alice <alice@example.org>", "ed25519")
    init_worker(CryptoConfig(recipients=(keygen.export(key.public(), armor=False),)))
    raws = samples.generate(seed=11, count=45)
    raws[0] = b"From : outer field to quote\nSubject: s\n\nFrom body\n>From quoted\n"
    seps = [b"From x@y Thu Jan  1 00:00:00 1970\n", None, b"From x@y Thu Jan  1 00:00:00 1970"]
    items = [MailItem(i, raw, seps[i % 3], 0, "src") for i, raw in enumerate(raws)]
    opts = JobOptions("encrypt")
    batch = work_batch(opts, items, out_fmt="mbox", shards=str(tmp_path / "o.mbox") if sharded else "")
    single = [_work_item(opts, item, "mbox") for item in items]
    assert [p.outcome for p in batch].count("encrypted") > 20 and all(bool(p.shard) == sharded for p in batch)
    provider = InProcessKeyProvider([key])
    for item, b, s in zip(items, batch, single, strict=True):
        size = int.from_bytes(b.entry[:8], "big")
        chunk = Path(b.shard).read_bytes()[b.at : b.at + size] if sharded else b.chunk
        assert len(chunk) == size
        assert b.entry == segment_entry(len(chunk), segment_hash.digest(chunk))
        rb, rs = json.loads(b.record), json.loads(s.record)
        assert {**rb, "out": 0, "w": 0, "wsha": ""} == {**rs, "out": 0, "w": 0, "wsha": ""}
        assert rb["w"] == len(chunk) and (rb["wsha"] == rs["wsha"]) == (b.outcome != "encrypted")
        assert _outside_armor(chunk) == _outside_armor(s.chunk)
        if b.outcome == "encrypted":
            sep_end = chunk.index(b"\n") + 1
            stored = unquote(chunk[sep_end:-2] if chunk.endswith(b"\r\n") else chunk[sep_end:-1])
            assert unwrap(stored, lambda a: message.decrypt(a, provider).plaintext) == item.raw
