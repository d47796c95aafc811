"""Re-wrap: new PKESKs, the encrypted data packet byte for byte; gpg decrypts with the new key."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import DecryptionFailed, NoMatchingKey
from engine.openpgp import keygen, message
from engine.openpgp.constants import SymmetricAlgorithm
from engine.openpgp.keys import read_certs
from engine.openpgp.pkesk import SessionKey
from engine.openpgp.provider import InProcessKeyProvider
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_tool("gpg")
    home = tmp_path_factory.mktemp("rewrap") / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    for name, primary, sub in (("old", "ed25519", "cv25519"), ("new", "rsa2048", "rsa2048")):
        _gpg(home, "--quick-gen-key", f"{name} <{name}@example.org>", primary, "cert", "never")
        fpr = _gpg(home, "--with-colons", "-k", f"{name}@example.org").decode().split("fpr:::::::::")[1][:40]
        _gpg(home, "--quick-add-key", fpr, sub, "encr", "never")
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def _gpg(home: Path, *args: str, stdin: bytes = b"") -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--yes", "--trust-model", "always"]
    cmd += ["--pinentry-mode", "loopback", "--passphrase", "", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


@pytest.mark.peer
@pytest.mark.parametrize("extra", [[], ["--compress-algo", "none"], ["--armor"]])
def test_rewrap_gpg_message_to_new_key(gpg_home: Path, extra: list[str]) -> None:
    plaintext = os.urandom(8192) + b"mail body\n" * 100
    original = _gpg(gpg_home, *extra, "--encrypt", "-r", "old@example.org", stdin=plaintext)
    old = InProcessKeyProvider(read_certs(_gpg(gpg_home, "--export-secret-keys", "old@example.org")))
    new_cert = read_certs(_gpg(gpg_home, "--export", "new@example.org"))[0]
    sk = message.decrypt_session_key(original, old)
    assert message.needs_full_reencryption(original, sk, [new_cert]) is None
    rewrapped = message.rewrap(original, sk, [new_cert])
    assert rewrapped.startswith(b"-----BEGIN PGP") == ("--armor" in extra)
    before, after = message.parse_message(original), message.parse_message(rewrapped)
    assert bytes(after.data.raw) == bytes(before.data.raw)  # data packet byte for byte
    assert [p.key_id for p in after.pkesks] == [new_cert.encryption_subkey().key_id]
    assert _gpg(gpg_home, "--decrypt", stdin=rewrapped) == plaintext
    with pytest.raises(NoMatchingKey):
        message.decrypt(rewrapped, old)


@pytest.mark.peer
def test_weak_containers_need_full_reencryption(gpg_home: Path) -> None:
    old = InProcessKeyProvider(read_certs(_gpg(gpg_home, "--export-secret-keys", "old@example.org")))
    v6 = keygen.generate("Six <six@example.org>", version=6).public()
    for algo, weak in (("CAST5", True), ("CAMELLIA256", False), ("AES128", False)):
        ct = _gpg(gpg_home, "--cipher-algo", algo, "--encrypt", "-r", "old@example.org", stdin=b"x")
        sk = message.decrypt_session_key(ct, old)
        assert (message.needs_full_reencryption(ct, sk) is not None) == weak
        # an X25519 (v6) recipient cannot take a non-AES session key
        assert (message.needs_full_reencryption(ct, sk, [v6]) is not None) == (algo != "AES128")


def test_rewrap_in_process_v1_and_v2() -> None:
    a, b = keygen.generate("A <a@example.org>"), keygen.generate("B <b@example.org>", version=6)
    for aead in (False, True):
        ct = message.encrypt(b"payload", [a.public()], aead=aead)
        sk = message.decrypt_session_key(ct, InProcessKeyProvider([a]))
        out = message.rewrap(ct, sk, [b.public(), a.public()])
        assert [p.version for p in message.parse_message(out).pkesks] == [6 if aead else 3] * 2
        for key in (a, b):
            assert message.decrypt(out, InProcessKeyProvider([key])).plaintext == b"payload"
    with pytest.raises(DecryptionFailed):  # wrong size for the SEIPD v2 cipher
        message.rewrap(ct, SessionKey(SymmetricAlgorithm.AES128, os.urandom(16)), [b.public()])
    v1 = message.encrypt(b"payload", [a.public()])
    with pytest.raises(DecryptionFailed):  # fails the v1 prefix quick check (2**-16 false pass)
        message.rewrap(v1, SessionKey(SymmetricAlgorithm.AES256, os.urandom(32)), [b.public()])
