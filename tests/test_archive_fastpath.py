"""The archive fast path: a segmented output digest that still catches damage on resume, and the
``--verify`` self-check with a known session key that still catches a changed byte anywhere."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest

from engine.mail.crypto import CryptoConfig, current, init_worker
from engine.mail.pgpmime import unwrap, wrap
from engine.openpgp import keygen
from engine.scheduler import AppendFile, ResumeRefused
from engine.scheduler.journal import START, Position
from engine.scheduler.sink import segment_entry


def _written(path: Path, chunks: list[bytes]) -> tuple[Position, list[tuple[int, bytes]]]:
    f = AppendFile(path, segmented=True)
    f.rewind(START)
    segs = [(len(c), hashlib.sha256(c).digest()) for c in chunks]
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


def test_shards_are_private_copied_in_order_and_removed(tmp_path: Path) -> None:
    """Workers on a pool leave each batch's mbox chunks in a shard file beside DST (0600); the sink
    copies them into the output in order, keeps the segmented digest, and removes the shards."""
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
    shards = sorted(tmp_path.glob("out.mbox.shard-*"))
    assert len(shards) == 2 and all(p.stat().st_mode & 0o777 == 0o600 for p in shards)
    assert all(not p.chunk and p.shard for b in sharded for p in b)
    sink.write_batch(sharded[0])
    sink.write_batch([*sharded[1][:1], batches[1][1], *sharded[1][2:]])  # a chunk carried inline too
    assert len(list(tmp_path.glob("out.mbox.shard-*"))) == 2  # copied and removed at the checkpoint
    offset, digest = sink.checkpoint()
    assert not list(tmp_path.glob("out.mbox.shard-*"))
    sink.close()
    assert sink.partial.read_bytes() == expected and offset == len(expected)
    segs = [(len(p.chunk), hashlib.sha256(p.chunk).digest()) for b in batches for p in b]
    AppendFile(sink.partial, segmented=True).rewind(Position(7, offset, digest), segs)  # digest as usual
    to_shard(str(dst), batches[0])  # a shard left by a killed run: gone at the next rewind or close
    sink.close()
    assert not list(tmp_path.glob("out.mbox.shard-*"))


@pytest.mark.parametrize(
    "reason",
    [None, "plain reason", 'quote " and backslash \\', "non-ASCII: jörg ✉", "control\tchar\n"],
)
def test_mbox_record_equals_the_json_reference(reason: str | None) -> None:
    """``Processed.mbox`` writes its record from a template (the worker's hot path): the bytes must equal
    what ``json.dumps`` makes of :meth:`Processed._record` plus the chunk's length and SHA-256."""
    from engine.mail.item import MailItem
    from engine.mail.sinks import Processed, _line

    raw = b"From: a\n\nbody\nFrom here\n"
    item = MailItem(12, b"", b"From x Thu Jan  1 00:00:00 1970\n", 345, 'dir/"mail".mbox')
    p = Processed.mbox(item, raw, "plain", "copied", "ab" * 32, 99, reason, "cd" * 32)
    want = _line(p._record(None, len(raw)) | {"w": len(p.chunk), "wsha": hashlib.sha256(p.chunk).hexdigest()})
    assert p.record == want
