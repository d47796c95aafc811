"""Archive jobs end to end with the real gpg as the payload functions (interop proven both ways)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.mail.classify import MailClass, classify
from engine.mail.item import MailItem
from engine.mail.job import decrypt_archive, encrypt_archive, process_one
from engine.mail.pgpmime import restore
from engine.mail.source import open_source
from tests import mailgen

COUNT = 30  # two of every kind
PASSED = {"pgp_mime", "inline_pgp", "smime"}
COPIED = {"malformed_header", "empty"}


@pytest.fixture
def gpg(gnupghome: Path) -> mailgen.Gpg:
    g = mailgen.Gpg(gnupghome)
    g.generate_key()
    return g


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted([path] if path.is_file() else path.rglob("*")):
        h.update(str(p.relative_to(path.parent)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _armored_part(raw: bytes) -> tuple[email.message.EmailMessage, bytes]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg.get_content_type() == "multipart/encrypted"
    assert msg.get_param("protocol") == "application/pgp-encrypted"
    version, data = msg.iter_parts()
    assert version.get_content_type() == "application/pgp-encrypted"
    assert version.get_payload().strip() == "Version: 1"
    assert data.get_content_type() == "application/octet-stream"
    armored = data.get_payload().encode()
    assert armored.lstrip().startswith(b"-----BEGIN PGP MESSAGE-----")
    return msg, armored


def test_encrypt_mbox_with_gpg(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    messages = mailgen.generate(seed=31, count=COUNT)
    src = mailgen.write_mbox(tmp_path / "src.mbox", messages)
    before = _tree_hash(src)
    rep = encrypt_archive(src, tmp_path / "enc.mbox", gpg.encrypt, report=tmp_path / "r.json",
                          verify_with=gpg.decrypt)  # fmt: skip
    assert _tree_hash(src) == before
    assert rep.ok and rep.verify == {"checked": COUNT, "expected": COUNT, "mismatches": [], "ok": True}
    assert rep.outcomes == {"encrypted": 20, "passed": 6, "copied": 4}
    assert rep.classes["plain"] == 18 and rep.classes["signed"] == 2
    assert [f["index"] for f in rep.failures] == [i for i in range(COUNT) if mailgen.kind_of(i) in COPIED]
    assert stat.S_IMODE((tmp_path / "enc.mbox").stat().st_mode) == 0o600
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcomes"] == dict(rep.outcomes) and len(report["sha256"]) == COUNT
    assert report["failures"][0]["file"] == str(src) and report["failures"][0]["offset"] > 0

    out = list(open_source(tmp_path / "enc.mbox"))
    assert len(out) == COUNT
    for i, (item, raw) in enumerate(zip(out, messages, strict=True)):
        kind = mailgen.kind_of(i)
        if kind in PASSED | COPIED:
            assert item.raw == raw
            continue
        assert classify(item.raw) is MailClass.PGP_MIME
        msg, armored = _armored_part(item.raw)
        assert msg["Subject"] == "[...]" and msg["Message-ID"] == f"<msg{i}@example.org>"
        inner = gpg.run("--decrypt", data=armored)  # gpg itself reads our PGP/MIME part
        assert email.message_from_bytes(inner).get_param("hp") == "cipher"
        assert restore(inner) == raw
        eol = b"\r\n" if b"\r\n" in raw[:200] else b"\n"
        assert item.raw.count(b"\n") == item.raw.count(eol)  # line endings follow the input


def test_decrypt_reencrypt_roundtrip_is_exact(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    messages = mailgen.generate(seed=32, count=COUNT)
    src = mailgen.write_mbox(tmp_path / "src.mbox", messages)
    encrypt_archive(src, tmp_path / "e1", gpg.encrypt)
    rep = decrypt_archive(tmp_path / "e1", tmp_path / "d1", gpg.decrypt, verify=True)
    # the generator's fake PGP/MIME messages cannot be decrypted: copied unchanged and reported
    assert rep.ok and rep.outcomes == {"decrypted": 20, "passed": 8, "copied": 2}
    assert {f["class"] for f in rep.failures} == {"pgp-mime"}
    assert (tmp_path / "d1").read_bytes() == src.read_bytes()
    encrypt_archive(tmp_path / "d1", tmp_path / "e2", gpg.encrypt, keep_subject=True)
    decrypt_archive(tmp_path / "e2", tmp_path / "d2", gpg.decrypt)
    assert (tmp_path / "d2").read_bytes() == src.read_bytes()


def test_maildir_with_dovecot_names(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    messages = mailgen.generate(seed=33, count=15)
    files = mailgen.write_maildir(tmp_path / "src", messages)
    rep = encrypt_archive(tmp_path / "src", tmp_path / "enc", gpg.encrypt, verify_with=gpg.decrypt)
    assert rep.ok and rep.destination_format == "maildir"
    enc = list(open_source(tmp_path / "enc"))
    for item, f in zip(enc, files, strict=True):
        assert item.subdir == f.parent.name
        flags = f.name.partition(":2,")[2] if ":" in f.name else None
        assert item.name == mailgen.dovecot_name(int(f.name.split(".")[0]) - 1700000000, item.raw, flags)
        assert stat.S_IMODE(os.stat(item.source).st_mode) == 0o600
    decrypt_archive(tmp_path / "enc", tmp_path / "dec", gpg.decrypt)
    dec = list(open_source(tmp_path / "dec"))
    assert [(i.subdir, i.name, i.raw) for i in dec] == [
        (f.parent.name, f.name, f.read_bytes()) for f in files
    ]


def _failing(gpg: mailgen.Gpg, data: bytes) -> bytes:
    if b"<msg3@example.org>" in data:
        raise subprocess.CalledProcessError(2, "gpg")
    return gpg.encrypt(data)


def test_payload_failure_copies_that_message_only(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    messages = mailgen.generate(seed=34, count=8)
    src = mailgen.write_emldir(tmp_path / "src", messages)[0].parent
    rep = encrypt_archive(src, tmp_path / "out", partial(_failing, gpg))
    assert rep.committed
    failed = [f for f in rep.failures if "encryption failed" in f["reason"]]
    assert [(f["index"], Path(f["file"]).name) for f in failed] == [(3, "0003.eml")]
    out = [i.raw for i in open_source(tmp_path / "out")]
    assert out[3] == messages[3]
    assert all(classify(out[i]) is MailClass.PGP_MIME for i in (0, 1, 2, 4, 5, 6))


def test_verify_failure_commits_nothing(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    src = mailgen.write_mbox(tmp_path / "src.mbox", mailgen.generate(seed=35, count=3))
    rep = encrypt_archive(src, tmp_path / "out", gpg.encrypt, verify_with=lambda a: gpg.decrypt(a) + b"!")
    assert not rep.ok and rep.verify is not None and rep.verify["mismatches"] == [0, 1, 2]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from tests import mailgen
from engine.mail.job import encrypt_archive
gpg, calls = mailgen.Gpg({home!r}), []
def payload(data):
    calls.append(1)
    if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return gpg.encrypt(data)
encrypt_archive({src!r}, {dst!r}, payload)
"""


def test_killed_run_leaves_only_partial(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    messages = mailgen.generate(seed=36, count=8)
    src = mailgen.write_mbox(tmp_path / "src.mbox", messages)
    before = _tree_hash(src)
    dst = tmp_path / "out.mbox"
    code = KILLER.format(tests=str(Path(__file__).parent), home=gpg.home, src=str(src), dst=str(dst))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not dst.exists() and (tmp_path / "out.mbox.partial").exists()
    rep = encrypt_archive(src, dst, gpg.encrypt, verify_with=gpg.decrypt)
    assert rep.ok and not (tmp_path / "out.mbox.partial").exists()
    assert len(list(open_source(dst))) == 8 and _tree_hash(src) == before


def test_process_one_is_picklable(gpg: mailgen.Gpg) -> None:
    raw = mailgen.generate(seed=37, count=1)[0]
    item = MailItem(0, raw, b"From x\n", 0, "src")
    with ProcessPoolExecutor(max_workers=1) as pool:
        result = pool.submit(process_one, item, "encrypt", gpg.encrypt).result()
    assert pickle.loads(pickle.dumps(result)) == result
    assert result.outcome == "encrypted" and result.sha256 == hashlib.sha256(raw).hexdigest()
    assert process_one(item.with_raw(result.raw), "decrypt", gpg.decrypt).raw == raw


@pytest.mark.slow
def test_30mb_attachment(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    raw = mailgen.message(__import__("random").Random(1), "attachment", 0, attachment_size=30 << 20)
    src = mailgen.write_mbox(tmp_path / "big.mbox", [raw, b"Subject: small\n\nx\n"])
    rep = encrypt_archive(src, tmp_path / "enc", gpg.encrypt, verify_with=gpg.decrypt)
    assert rep.ok and rep.outcomes == {"encrypted": 2}
    decrypt_archive(tmp_path / "enc", tmp_path / "dec", gpg.decrypt)
    assert (tmp_path / "dec").read_bytes() == src.read_bytes()
    assert re.search(rb"hp=\"cipher\"", raw) is None


def test_destination_must_differ_from_source(tmp_path: Path) -> None:
    src = mailgen.write_mbox(tmp_path / "src.mbox", mailgen.generate(seed=38, count=2))
    with pytest.raises(InvalidArgument):
        encrypt_archive(src, tmp_path / "." / "src.mbox", lambda data: data, overwrite=True)
    with pytest.raises(InvalidArgument):
        process_one(MailItem(0, b"x"), "rewrap", lambda data: data)


def _armor_reversed(data: bytes) -> bytes:
    """A stand-in payload function where gpg is not the point of the test."""
    return b"-----BEGIN PGP MESSAGE-----\n\n" + data[::-1].hex().encode() + b"\n-----END PGP MESSAGE-----\n"


def test_truncated_last_message_is_carried_over(tmp_path: Path) -> None:
    messages = mailgen.generate(seed=39, count=4)
    data = mailgen.mbox_bytes(messages)
    (tmp_path / "cut.mbox").write_bytes(data[:-30])
    report = tmp_path / "r.json"
    rep = encrypt_archive(tmp_path / "cut.mbox", tmp_path / "out", _armor_reversed, report=report)
    assert rep.outcomes == {"encrypted": 3, "copied": 1}
    (failure,) = rep.failures
    assert failure["index"] == 3 and failure["reason"] == "truncated last message"
    assert data[failure["offset"] :].startswith(b"From alice@example.org")
    out = list(open_source(tmp_path / "out"))
    cut = list(open_source(tmp_path / "cut.mbox"))[3]
    assert cut.truncated and out[3].raw == cut.raw and len(cut.raw) < len(messages[3]) - 25
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
