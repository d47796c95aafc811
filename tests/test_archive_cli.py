"""``pgpbulk encrypt`` / ``decrypt`` end to end with the in-process core, checked by gpg and Python's email."""

from __future__ import annotations

import email
import email.policy
import json
import stat
import subprocess
from pathlib import Path

import pytest

from engine.cli import main
from engine.mail.job import verify_output
from engine.mail.pgpmime import unwrap
from engine.mail.source import open_source
from engine.openpgp.keygen import export, generate
from engine.wkd.hashing import wkd_hash
from tests import mailgen
from tests.conftest import require_tool
from tests.test_wkd_nginx import pki as wkd_pki

COUNT = 30


def make_key(tmp: Path, name: str, passphrase: str | None = None) -> tuple[Path, Path]:
    """A fresh in-memory key written as ``NAME.sec`` (armored secret) and ``NAME.pub`` (binary)."""
    key = generate(f"{name.title()} <{name}@example.org>", passphrase=passphrase)
    sec, pub = tmp / f"{name}.sec", tmp / f"{name}.pub"
    sec.write_bytes(export(key, secret=True))
    pub.write_bytes(export(key.public(), armor=False))
    return sec, pub


def gpg_import(home: Path, *files: Path) -> None:
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", "--import", *map(str, files)],
                   check=True, capture_output=True)  # fmt: skip


def gpg_decrypt(home: Path, armored: bytes) -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--decrypt"]
    return subprocess.run(cmd, input=armored, capture_output=True, check=True).stdout


def clean_messages(seed: int, count: int = COUNT, fakes: bool = True) -> list[bytes]:
    """Messages of every kind but those carried over unchanged (so encrypt exits 0); without ``fakes``
    also without the samples' fake PGP/MIME messages (random bytes, which decrypt cannot process)."""
    skip = set(mailgen.CARRIED_KINDS) | (set() if fakes else {"pgp_mime"})
    everything = mailgen.generate(seed=seed, count=3 * count)
    return [m for i, m in enumerate(everything) if mailgen.kind_of(i) not in skip][:count]


def pgpbulk(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "-q"])
    out, err = capsys.readouterr()
    return code, out, err


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _armored(raw: bytes) -> bytes:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/encrypted"
    version, data = msg.iter_parts()  # type: ignore[union-attr]
    assert version.get_payload().strip() == "Version: 1"
    return data.get_payload().encode()


def test_mbox_encrypt_gpg_reads_decrypt_restores(
    tmp_path: Path, gnupghome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sec, pub = make_key(tmp_path, "alice")
    gpg_import(gnupghome, sec)
    src = mailgen.write_mbox(tmp_path / "src.mbox", clean_messages(7))
    before = src.read_bytes()
    enc, dec, report = tmp_path / "enc.mbox", tmp_path / "dec.mbox", tmp_path / "r.json"
    code, out, _ = pgpbulk(capsys, "encrypt", str(src), "-o", str(enc), "-r", str(pub), "--workers", "2",
                           "--batch-size", "4", "--verify", "--report", str(report))  # fmt: skip
    assert code == 0, out
    assert "verify: 30 messages checked, all match" in out
    assert src.read_bytes() == before and stat.S_IMODE(enc.stat().st_mode) == 0o600
    assert not (tmp_path / "enc.mbox.journal").exists() and not (tmp_path / "enc.mbox.partial").exists()
    rep = json.loads(report.read_text())
    assert rep["messages"] == COUNT and rep["committed"] and rep["verify"]["ok"]
    assert rep["outcomes"] == {"encrypted": 24, "passed": 6}
    originals = [m.raw for m in open_source(src)]
    encrypted = [m for m in open_source(enc) if m.raw != originals[m.index]]
    assert len(encrypted) == 24
    for m in encrypted[:10]:  # gpg decrypts part 2; the payload restores to the original bytes
        assert unwrap(m.raw, lambda a: gpg_decrypt(gnupghome, a)) == originals[m.index]
        assert b"Subject: [...]" in m.raw.split(b"\n\n", 1)[0].replace(b"\r", b"")
    code, out, err = pgpbulk(capsys, "decrypt", str(enc), "-o", str(dec), "--key", f"file:{sec}", "--verify")
    assert code == 1 and "verify: 30 messages checked, all match" in out
    assert "2 messages could not be processed" in err  # the samples' fake PGP/MIME messages (random bytes)
    assert dec.read_bytes() == before


def test_maildir_round_trip_keeps_names_and_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sec, pub = make_key(tmp_path, "alice")
    src = tmp_path / "Maildir"
    mailgen.write_maildir(src, clean_messages(8))
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    code, out, _ = pgpbulk(capsys, "encrypt", str(src), "-o", str(enc), "-r", str(pub), "--workers", "1")
    assert code == 0, out
    enc_tree = _tree(enc)
    assert len(enc_tree) == COUNT and all(stat.S_IMODE((enc / n).stat().st_mode) == 0o600 for n in enc_tree)
    changed = [n for n in enc_tree if n not in _tree(src)]  # Dovecot S=/W= follow the new size
    assert len(changed) == 24 and all(_armored(enc_tree[n]).startswith(b"-----BEGIN PGP") for n in changed)
    code, out, _ = pgpbulk(capsys, "decrypt", str(enc), "-o", str(dec), "--key", str(sec), "--workers", "2")
    assert code == 1 and "(2 copied, 24 decrypted, 4 passed)" in out  # 2 copied: the fake PGP/MIME samples
    assert _tree(dec) == _tree(src)


def test_carried_over_messages_exit_1_and_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, pub = make_key(tmp_path, "alice")
    src = mailgen.write_mbox(tmp_path / "src.mbox", mailgen.generate(seed=3, count=15))
    report = tmp_path / "r.json"
    code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(tmp_path / "e"), "-r", str(pub),
                           "--workers", "1", "--report", str(report))  # fmt: skip
    assert code == 1
    assert "2 messages could not be processed and were copied unchanged" in err
    failures = json.loads(report.read_text())["failures"]
    assert [(f["index"], f["reason"]) for f in failures] == [(9, "malformed message"), (10, "empty message")]


def test_corruption_is_detected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sec, pub = make_key(tmp_path, "alice")
    src = mailgen.write_mbox(tmp_path / "src.mbox", clean_messages(9, 8))
    enc = tmp_path / "enc.mbox"
    assert pgpbulk(capsys, "encrypt", str(src), "-o", str(enc), "-r", str(pub), "--workers", "1")[0] == 0
    data = bytearray(enc.read_bytes())
    at = data.index(b"-----BEGIN PGP MESSAGE-----") + 200
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    enc.write_bytes(bytes(data))
    code, _, err = pgpbulk(capsys, "decrypt", str(enc), "-o", str(tmp_path / "dec"), "--key", str(sec))
    assert code == 1 and "1 messages could not be processed" in err
    # The re-read check of --verify catches bytes that changed on disk after they were written.
    items = list(open_source(enc))
    recs = [{"i": m.index, "name": None, "out_sha256": "0" * 64 if m.index == 0 else _sha(m.raw),
             "reason": None} for m in items]  # fmt: skip
    result = verify_output(enc, "mbox", recs)
    assert result["mismatches"] == [0] and not result["ok"]
    assert not list(tmp_path.glob("*.journal-records"))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_recipients_from_keyring(tmp_path: Path, gnupghome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_tool("gpg")
    sec, pub = make_key(tmp_path, "bob")
    gpg_import(gnupghome, pub)
    src = mailgen.write_mbox(tmp_path / "src.mbox", clean_messages(4, 3))
    for i, who in enumerate(["bob@example.org", "<bob@example.org>"]):
        code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(tmp_path / f"e{i}"), "-r", who,
                                 "--gnupghome", str(gnupghome), "--workers", "1")  # fmt: skip
        assert code == 0, err
    fpr = subprocess.run(["gpg", "--homedir", str(gnupghome), "--with-colons", "--list-keys"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    fingerprint = next(line.split(":")[9] for line in fpr.splitlines() if line.startswith("fpr:"))
    code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(tmp_path / "e3"), "-r", fingerprint,
                           "--gnupghome", str(gnupghome), "--workers", "1")  # fmt: skip
    assert code == 0, err
    dec = tmp_path / "dec"
    assert pgpbulk(capsys, "decrypt", str(tmp_path / "e3"), "-o", str(dec), "--key", str(sec))[0] == 0
    assert dec.read_bytes() == src.read_bytes()
    code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(tmp_path / "e4"), "-r", "nobody@example.org",
                           "--gnupghome", str(gnupghome))  # fmt: skip
    assert code == 2 and "no such key" in err


def _one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sec, pub = make_key(tmp_path, "alice", passphrase="right")
    src = mailgen.write_mbox(tmp_path / "src.mbox", clean_messages(5, 4))
    enc = tmp_path / "enc.mbox"
    _one_line_error(*pgpbulk(capsys, "encrypt", str(tmp_path / "missing"), "-o", str(enc), "-r", str(pub))[::2],
                    "no such file")  # fmt: skip
    assert pgpbulk(capsys, "encrypt", str(src), "-o", str(enc), "-r", str(pub), "--workers", "1")[0] == 0
    _one_line_error(*pgpbulk(capsys, "encrypt", str(src), "-o", str(enc), "-r", str(pub))[::2], "--force")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key at all\n")
    _one_line_error(*pgpbulk(capsys, "encrypt", str(src), "-o", str(tmp_path / "x"), "-r", str(garbage))[::2],
                    "garbage.key")  # fmt: skip
    dec = str(tmp_path / "dec")
    _one_line_error(
        *pgpbulk(capsys, "decrypt", str(enc), "-o", dec, "--key", str(garbage))[::2], "garbage.key"
    )
    _one_line_error(
        *pgpbulk(capsys, "decrypt", str(enc), "-o", dec, "--key", str(sec))[::2], "--passphrase-file"
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong\n")
    _one_line_error(*pgpbulk(capsys, "decrypt", str(enc), "-o", dec, "--key", str(sec), "--passphrase-file",
                             str(wrong))[::2], "wrong passphrase")  # fmt: skip
    right = tmp_path / "right"
    right.write_text("right\n")
    code, _, err = pgpbulk(
        capsys, "decrypt", str(enc), "-o", dec, "--key", str(sec), "--passphrase-file", str(right)
    )
    assert code == 0, err
    assert Path(dec).read_bytes() == src.read_bytes()
    assert not list(tmp_path.glob("*.partial"))


pki = wkd_pki  # the test CA and server certificate (module fixture)


def test_recipient_from_wkd(tmp_path: Path, pki: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import http.server
    import ssl
    import threading

    sec, _ = make_key(tmp_path, "alice")
    key = generate("Dora <dora@example.org>")
    served = export(key.public(), armor=False)
    wanted = f"/.well-known/openpgpkey/example.org/hu/{wkd_hash('dora')}?l=dora"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served if self.path == wanted else b""
            self.send_response(200 if body or self.path.endswith("/policy") else 404)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = mailgen.write_mbox(tmp_path / "src.mbox", clean_messages(6, 3))
        enc = tmp_path / "enc.mbox"
        code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(enc), "-r", "wkd:dora@example.org",
                               "--cafile", str(pki["ca"]), "--wkd-connect", f"127.0.0.1:{server.server_port}",
                               "--workers", "1")  # fmt: skip
        assert code == 0, err
        dora = tmp_path / "dora.sec"
        dora.write_bytes(export(key, secret=True))
        assert pgpbulk(capsys, "decrypt", str(enc), "-o", str(tmp_path / "d"), "--key", str(dora))[0] == 0
        assert (tmp_path / "d").read_bytes() == src.read_bytes()
        code, _, err = pgpbulk(capsys, "encrypt", str(src), "-o", str(tmp_path / "e2"), "-r",
                               "wkd:nobody@example.org", "--cafile", str(pki["ca"]), "--wkd-connect",
                               f"127.0.0.1:{server.server_port}")  # fmt: skip
        assert code == 2 and "no key for nobody@example.org" in err
        assert pgpbulk(capsys, "decrypt", str(enc), "-o", str(tmp_path / "d2"), "--key", str(sec))[0] == 0
    finally:
        server.shutdown()


def test_verify_hashes_each_stored_entry_between_scanned_boundaries(tmp_path: Path) -> None:
    """For an mbox, ``--verify``'s re-read hashes each message's stored entry between the boundaries an
    independent scan finds: it passes on what was written and names a changed byte or a split message."""
    from engine.mail.mbox import entry
    from engine.scheduler.sink import segment_hash

    raws = [b"From: a@example.org\nSubject: %d\n\nbody\n>From here\nFrom there\n" % i for i in range(4)]
    chunks = [entry(raw, b"From x@y Thu Jan  1 00:00:00 1970\n") for raw in raws]
    records = [{"i": i, "wsha": segment_hash.digest(c).hex(), "reason": None} for i, c in enumerate(chunks)]
    out = tmp_path / "out.mbox"
    out.write_bytes(b"".join(chunks))
    assert verify_output(out, "mbox", records)["ok"]
    changed = bytearray(out.read_bytes())
    changed[len(chunks[0]) + 40] ^= 1
    out.write_bytes(bytes(changed))
    assert verify_output(out, "mbox", records)["mismatches"] == [1]
    split = b"".join(chunks[:2]) + chunks[2].replace(b"body\n", b"body\nFrom nobody\n", 1) + chunks[3]
    out.write_bytes(split)
    result = verify_output(out, "mbox", records)
    assert result["checked"] == 5 and not result["ok"] and result["mismatches"] == [2, 3, 4]
