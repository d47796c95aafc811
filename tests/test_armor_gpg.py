"""Armor interop with the real gpg: each side reads the other's output byte-exact."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from engine.armor import armor, dearmor, iter_dearmor
from tests.conftest import require_tool

pytestmark = pytest.mark.peer


def _gpg(home: Path, *args: str, data: bytes = b"") -> bytes:
    cmd = [require_tool("gpg"), "--homedir", str(home), "--batch", "--quiet", *args]
    return subprocess.run(cmd, input=data, capture_output=True, check=True, timeout=60).stdout


SIZES = [0, 1, 2, 3, 47, 48, 49, 1000, 100_003]


@pytest.mark.parametrize("kind", ["MESSAGE", "ARMORED FILE", "PUBLIC KEY BLOCK"])
def test_gpg_dearmors_ours(impl: str, gnupghome: Path, kind: str) -> None:
    rng = random.Random(kind)
    for n in SIZES:
        data = rng.randbytes(n)
        assert _gpg(gnupghome, "--dearmor", data=armor(data, kind, {"Comment": "pgpbulk"}, crc=True)) == data


def test_we_read_gpg_enarmor_and_match_its_crc(impl: str, gnupghome: Path) -> None:
    rng = random.Random(1)
    for n in SIZES:
        data = rng.randbytes(n)
        theirs = _gpg(gnupghome, "--enarmor", data=data)
        block = dearmor(theirs, strict=True)  # strict: a CRC disagreement would raise
        assert (block.kind, block.data) == ("ARMORED FILE", data)
        crc_line = [ln for ln in theirs.split(b"\n") if ln.startswith(b"=")][-1]
        assert crc_line in armor(data, "ARMORED FILE", crc=True).split(b"\n")


def test_we_read_gpg_exported_key(impl: str, gnupghome: Path) -> None:
    _gpg(gnupghome, "--passphrase", "", "--quick-gen-key", "A <a@example.org>", "ed25519", "default", "never")
    binary = _gpg(gnupghome, "--export", "a@example.org")
    armored = _gpg(gnupghome, "--armor", "--export", "a@example.org")
    assert binary and dearmor(armored, strict=True).data == binary
    assert dearmor(armored.replace(b"\n", b"\r\n")).kind == "PUBLIC KEY BLOCK"
    loopback = ("--pinentry-mode", "loopback", "--passphrase", "")
    secret = _gpg(gnupghome, *loopback, "--armor", "--export-secret-keys")
    blocks = list(iter_dearmor(b"keyring:\n" + armored + b"\n" + secret))
    assert [b.kind for b in blocks] == ["PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK"]
    assert blocks[0].data == binary
    assert _gpg(gnupghome, "--dearmor", data=armor(binary, "PUBLIC KEY BLOCK")) == binary
