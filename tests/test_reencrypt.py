"""``pgpbulk reencrypt``: re-wrap keeps data packets, full/auto re-encrypt weak containers, agent keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine.mail.crypto import KeyConfig, open_provider
from engine.mail.pgpmime import armored_span, unwrap, wrap
from engine.mail.source import open_source
from engine.openpgp import message
from engine.openpgp.constants import SymmetricAlgorithm
from tests import mailgen
from tests.test_archive_cli import clean_messages, gpg_decrypt, gpg_import, make_key, pgpbulk

pytestmark = pytest.mark.peer


def _encrypt(capsys: pytest.CaptureFixture[str], src: Path, dst: Path, pub: Path) -> Path:
    code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(dst), "-r", str(pub), "--workers", "1")
    assert code == 0, err
    return dst


def _data_packet(raw: bytes) -> bytes:
    begin, end, _ = armored_span(raw)
    return bytes(message.parse_message(raw[begin:end]).data.raw)


def _outside(raw: bytes) -> tuple[bytes, bytes]:
    begin, end, _ = armored_span(raw)
    return raw[:begin], raw[end:]


def test_rewrap_a_to_b_keeps_data_packets(
    tmp_path: Path, gnupghome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sec_a, pub_a = make_key(tmp_path, "alice")
    sec_b, pub_b = make_key(tmp_path, "bob")
    _, pub_c = make_key(tmp_path, "carol")
    gpg_import(gnupghome, sec_b)  # gpg holds only the new key
    plain = clean_messages(11, 13, fakes=False)  # 11 to encrypt, 2 already "encrypted" (inline, S/MIME)
    src_a = mailgen.write_mbox(tmp_path / "a-plain.mbox", plain)
    src_c = mailgen.write_mbox(tmp_path / "c-plain.mbox", plain[:4])
    enc_a = _encrypt(capsys, src_a, tmp_path / "a.mbox", pub_a)
    enc_c = _encrypt(capsys, src_c, tmp_path / "c.mbox", pub_c)
    mixed = tmp_path / "mixed.mbox"
    mixed.write_bytes(enc_a.read_bytes() + enc_c.read_bytes())
    out, report = tmp_path / "b.mbox", tmp_path / "r.json"
    code, _stdout, err = pgpbulk(capsys, "reencrypt", str(mixed), "-o", str(out), "--key", str(sec_a), "-r",
                                str(pub_b), "--mode", "rewrap", "--workers", "2", "--batch-size", "3",
                                "--report", str(report), "--verify")  # fmt: skip
    assert code == 0, err
    assert "4 messages are not encrypted to any given --key" in err
    rep = json.loads(report.read_text())
    assert rep["outcomes"] == {"not-ours": 4, "passed": 2, "rewrapped": 11}
    assert [f["index"] for f in rep["failures"]] == [13, 14, 15, 16]
    old = [m.raw for m in open_source(mixed)]
    new = list(open_source(out))
    assert len(new) == len(old) == 17
    rewrapped = [m for m in new[:13] if m.raw != old[m.index]]
    assert len(rewrapped) == 11
    for m in rewrapped:
        assert _data_packet(m.raw) == _data_packet(old[m.index])  # SEIPD bytes unchanged
        assert _outside(m.raw) == _outside(old[m.index])  # only the armored block changed
    for m in rewrapped[:5]:
        assert unwrap(m.raw, lambda a: gpg_decrypt(gnupghome, a)) == plain[m.index]
    assert [m.raw for m in new[13:]] == old[13:]  # carol's messages: copied unchanged
    with pytest.raises(subprocess.CalledProcessError):  # and they are not for bob
        unwrap(new[13].raw, lambda a: gpg_decrypt(gnupghome, a))


def test_rewrap_through_gpg_agent(
    tmp_path: Path, gnupghome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sec_a, pub_a = make_key(tmp_path, "alice")
    sec_b, pub_b = make_key(tmp_path, "bob")
    gpg_import(gnupghome, sec_a)  # the old key lives in the agent
    src = mailgen.write_mbox(tmp_path / "plain.mbox", clean_messages(12, 8, fakes=False))
    enc = _encrypt(capsys, src, tmp_path / "a.mbox", pub_a)
    out, back = tmp_path / "b.mbox", tmp_path / "back.mbox"
    code, stdout, err = pgpbulk(capsys, "reencrypt", str(enc), "-o", str(out), "--key", "agent:", "--gnupghome",
                                str(gnupghome), "-r", str(pub_b), "--workers", "2")  # fmt: skip
    assert code == 0, err
    assert "(8 rewrapped)" in stdout
    code, _, err = pgpbulk(
        capsys, "decrypt", str(out), "-o", str(back), "--key", str(sec_b), "--workers", "1"
    )
    assert code == 0, err
    assert back.read_bytes() == src.read_bytes()


def _gpg_cast5(home: Path, recipient: str) -> object:
    def encrypt(plaintext: bytes) -> bytes:
        cmd = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--trust-model", "always", "--armor",
               "--cipher-algo", "CAST5", "-r", recipient, "--encrypt"]  # fmt: skip
        return subprocess.run(cmd, input=plaintext, capture_output=True, check=True).stdout

    return encrypt


def test_weak_container_is_reencrypted_in_full(
    tmp_path: Path, gnupghome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sec_a, pub_a = make_key(tmp_path, "alice")
    sec_b, pub_b = make_key(tmp_path, "bob")
    gpg_import(gnupghome, pub_a)
    plain = clean_messages(13, 3, fakes=False)
    weak = [wrap(raw, _gpg_cast5(gnupghome, "alice@example.org")) for raw in plain]  # type: ignore[arg-type]
    src = mailgen.write_mbox(tmp_path / "weak.mbox", weak)
    code, _, err = pgpbulk(capsys, "reencrypt", str(src), "-o", str(tmp_path / "r.mbox"), "--key", str(sec_a),
                           "-r", str(pub_b), "--mode", "rewrap", "--workers", "1")  # fmt: skip
    assert code == 1 and "3 messages could not be processed" in err  # rewrap refuses to keep CAST5
    report = tmp_path / "auto.json"
    code, _, err = pgpbulk(capsys, "reencrypt", str(src), "-o", str(tmp_path / "a.mbox"), "--key", str(sec_a),
                           "-r", str(pub_b), "--workers", "1", "--verify", "--report", str(report))  # fmt: skip
    assert code == 0, err
    assert json.loads(report.read_text())["outcomes"] == {"reencrypted": 3}
    bob = open_provider(KeyConfig((str(sec_b),)))
    for m in open_source(tmp_path / "a.mbox"):
        begin, end, _ = armored_span(m.raw)
        result = message.decrypt(m.raw[begin:end], bob)
        assert result.cipher == SymmetricAlgorithm.AES256
        assert unwrap(m.raw, lambda a: message.decrypt(a, bob).plaintext) == plain[m.index]


def test_full_mode_writes_new_data_packets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sec_a, pub_a = make_key(tmp_path, "alice")
    sec_b, pub_b = make_key(tmp_path, "bob")
    src = mailgen.write_mbox(tmp_path / "plain.mbox", clean_messages(14, 5, fakes=False))
    enc = _encrypt(capsys, src, tmp_path / "a.mbox", pub_a)
    out, back = tmp_path / "b.mbox", tmp_path / "back.mbox"
    code, stdout, err = pgpbulk(capsys, "reencrypt", str(enc), "-o", str(out), "--key", str(sec_a), "-r",
                                str(pub_b), "--mode", "full", "--workers", "1", "--keep-subject")  # fmt: skip
    assert code == 0 and "(5 reencrypted)" in stdout, err
    old = {m.index: m.raw for m in open_source(enc)}
    for m in open_source(out):
        assert _data_packet(m.raw) != _data_packet(old[m.index])
        assert b"Subject: [...]" not in m.raw  # --keep-subject on the new outer header
    assert pgpbulk(capsys, "decrypt", str(out), "-o", str(back), "--key", str(sec_b))[0] == 0
    assert back.read_bytes() == src.read_bytes()
