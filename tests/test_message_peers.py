"""Interop of message encryption/decryption with real peers: gpg 2.2, sq, rnp, sqop, gosop.

Every peer works in a throwaway home. Keys come from gpg (Cv25519, RSA-3072, NIST P-256) and from the
SOP tools' own ``generate-key``.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import IntegrityError, InvalidArgument
from engine.openpgp import message, streaming
from engine.openpgp.compressed import DecompressionLimit
from engine.openpgp.constants import PacketTag
from engine.openpgp.keys import read_certs
from engine.openpgp.provider import InProcessKeyProvider
from tests.conftest import require_tool

pytestmark = pytest.mark.peer

ALGS = {
    "cv25519": ("ed25519", "cv25519"),
    "rsa3072": ("rsa3072", "rsa3072"),
    "p256": ("nistp256", "nistp256"),
}
SIZES = [0, 1, 8192, 3 << 20]
PASS = "correct horse"


def run(*args: str | Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run([str(a) for a in args], input=stdin, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout


class Gpg:
    """A throwaway GnuPG home with one key per algorithm, plus exports."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.base = ["gpg", "--homedir", str(home), "--batch", "--yes", "--trust-model", "always"]
        self.loop = ["--pinentry-mode", "loopback", "--passphrase"]

    def __call__(self, *args: str | Path, stdin: bytes = b"") -> bytes:
        return run(*self.base, *args, stdin=stdin)

    def make_key(self, name: str, primary: str, sub: str, passphrase: str = "") -> None:
        self(
            *self.loop,
            passphrase,
            "--quick-gen-key",
            f"{name} <{name}@example.org>",
            primary,
            "cert,sign",
            "never",
        )
        fpr = self.fpr(name)
        self(*self.loop, passphrase, "--quick-add-key", fpr, sub, "encr", "never")

    def fpr(self, name: str) -> str:
        out = self("--with-colons", "--list-keys", f"{name}@example.org").decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))

    def public(self, name: str) -> bytes:
        return self("--export", f"{name}@example.org")

    def secret(self, name: str, passphrase: str = "") -> bytes:
        return self(*self.loop, passphrase, "--export-secret-keys", f"{name}@example.org")

    def decrypt(self, data: bytes, passphrase: str = "") -> bytes:
        return self(*self.loop, passphrase, "--decrypt", stdin=data)


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gpg]:
    require_tool("gpg")
    home = tmp_path_factory.mktemp("peers") / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    g = Gpg(home)
    for name, (primary, sub) in ALGS.items():
        g.make_key(name, primary, sub)
    g.make_key("locked", "ed25519", "cv25519", PASS)
    yield g
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def _provider(g: Gpg, name: str) -> InProcessKeyProvider:
    return InProcessKeyProvider(read_certs(g.secret(name)))


# --- gpg --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALGS))
@pytest.mark.parametrize("size", SIZES)
def test_we_encrypt_gpg_decrypts(gpg: Gpg, name: str, size: int) -> None:
    if size > 8192 and name != "cv25519":
        pytest.skip("large sizes once, on Cv25519")
    cert = read_certs(gpg.public(name))[0]
    plaintext = os.urandom(size)
    armored = message.encrypt(plaintext, [cert], armor=True)
    assert gpg.decrypt(armored) == plaintext
    compressed = message.encrypt(plaintext, [cert], compress=True)
    assert gpg.decrypt(compressed) == plaintext


@pytest.mark.parametrize("name", ["rsa3072", "cv25519"])
def test_encrypt_many_gpg_decrypts(gpg: Gpg, name: str) -> None:
    """Messages encrypted side by side (interleaved CFB in the native kernel) each decrypt with gpg."""
    cert = read_certs(gpg.public(name))[0]
    plaintexts = [os.urandom(size) for size in (0, 1, 17, 8192, 70_000, 300)]
    armored = message.encrypt_many(plaintexts, [cert], armor=True)
    assert len(set(armored)) == len(plaintexts)
    assert [gpg.decrypt(a) for a in armored] == plaintexts


def test_we_encrypt_stream_gpg_decrypts(gpg: Gpg) -> None:
    cert = read_certs(gpg.public("cv25519"))[0]
    plaintext = os.urandom(5 << 20)
    for compress in (False, True):
        out = io.BytesIO()
        streaming.encrypt_stream(io.BytesIO(plaintext), out, [cert], compress=compress)
        assert gpg.decrypt(out.getvalue()) == plaintext


def test_two_recipients(gpg: Gpg) -> None:
    certs = [read_certs(gpg.public(n))[0] for n in ("rsa3072", "p256")]
    ct = message.encrypt(b"to both", certs)
    assert gpg.decrypt(ct) == b"to both"
    for n in ("rsa3072", "p256"):
        assert message.decrypt(ct, _provider(gpg, n)).plaintext == b"to both"


def _literal_mode(gpg: Gpg, ciphertext: bytes) -> str:
    """The literal data format octet as ``gpg --list-packets`` reports it (it decrypts with our key)."""
    listing = gpg("--list-packets", stdin=ciphertext).decode()
    return listing.split(":literal data packet:", 1)[1].split("mode ", 1)[1][0]


@pytest.mark.parametrize("fmt", ["b", "t", "u"])
def test_literal_format_seen_by_gpg(gpg: Gpg, fmt: str) -> None:
    cert = read_certs(gpg.public("cv25519"))[0]
    text = "grüße\r\nline two\n".encode()
    ct = message.encrypt(text, [cert], literal_format=fmt)
    assert _literal_mode(gpg, ct) == fmt
    out = io.BytesIO()
    streaming.encrypt_stream(io.BytesIO(text), out, [cert], literal_format=fmt, compress=True)
    assert _literal_mode(gpg, out.getvalue()) == fmt
    # We never convert line endings ('t'/'u' or not); gpg turns CRLF into LF for text on output.
    assert gpg.decrypt(out.getvalue()) == (text if fmt == "b" else text.replace(b"\r\n", b"\n"))
    result = message.decrypt(ct, _provider(gpg, "cv25519"))
    assert result.plaintext == text and result.literal.format == ord(fmt)


def test_sop_encrypt_as_text_writes_utf8_literal(gpg: Gpg, tmp_path: Path) -> None:
    from engine.sop import main as sop_main

    (tmp_path / "cert").write_bytes(gpg.public("cv25519"))
    modes = {}
    for as_ in ("binary", "text"):
        out = io.BytesIO()
        assert sop_main(["encrypt", f"--as={as_}", str(tmp_path / "cert")], io.BytesIO(b"hi\n"), out) == 0
        modes[as_] = _literal_mode(gpg, out.getvalue())
    assert modes == {"binary": "b", "text": "u"}


def test_literal_format_rejects_unknown(gpg: Gpg) -> None:
    cert = read_certs(gpg.public("cv25519"))[0]
    for bad in ("m", "x", "bt"):
        with pytest.raises(InvalidArgument, match="literal data format"):
            message.encrypt(b"x", [cert], literal_format=bad)
        with pytest.raises(InvalidArgument, match="literal data format"):
            streaming.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), [cert], literal_format=bad)


@pytest.mark.parametrize("name", list(ALGS))
@pytest.mark.parametrize("compress", ["default", "none"])
def test_gpg_encrypts_we_decrypt(gpg: Gpg, tmp_path: Path, name: str, compress: str) -> None:
    plaintext = b"line one\n" * 1000 + os.urandom(8192)
    src = tmp_path / "mail.txt"
    src.write_bytes(plaintext)
    extra = ["--compress-algo", "none"] if compress == "none" else []
    ct = gpg(*extra, "--encrypt", "-r", f"{name}@example.org", "--output", "-", src)
    result = message.decrypt(ct, _provider(gpg, name))
    assert result.plaintext == plaintext
    assert result.literal.filename == b"mail.txt" and result.integrity == "mdc"
    out = io.BytesIO()
    streaming.decrypt_stream(io.BytesIO(ct), out, _provider(gpg, name), memory_limit=4096)  # two passes
    assert out.getvalue() == plaintext


def test_gpg_signed_and_encrypted_keeps_signatures(gpg: Gpg) -> None:
    ct = gpg("--sign", "--encrypt", "-u", "cv25519@example.org", "-r", "cv25519@example.org", stdin=b"signed")
    result = message.decrypt(ct, _provider(gpg, "cv25519"))
    assert result.plaintext == b"signed"
    assert [p.tag for p in result.signatures] == [PacketTag.ONE_PASS_SIGNATURE, PacketTag.SIGNATURE]


def test_protected_key_unlocks_once(gpg: Gpg) -> None:
    ct = gpg("--encrypt", "-r", "locked@example.org", stdin=b"secret mail")
    provider = InProcessKeyProvider(read_certs(gpg.secret("locked", PASS)), passphrase=PASS)
    for _ in range(3):
        assert message.decrypt(ct, provider).plaintext == b"secret mail"


def test_tampered_gpg_message_releases_nothing(gpg: Gpg) -> None:
    ct = bytearray(
        gpg("--compress-algo", "none", "--encrypt", "-r", "cv25519@example.org", stdin=b"x" * 4000)
    )
    ct[-100] ^= 0x01  # inside the SEIPD body
    with pytest.raises(IntegrityError):
        message.decrypt(bytes(ct), _provider(gpg, "cv25519"))
    with pytest.raises(IntegrityError):
        streaming.decrypt_stream(
            io.BytesIO(bytes(ct)), io.BytesIO(), _provider(gpg, "cv25519"), memory_limit=1000
        )


def test_gpg_compression_bomb_is_bounded(gpg: Gpg) -> None:
    ct = gpg("-z", "9", "--encrypt", "-r", "cv25519@example.org", stdin=bytes(20 << 20))
    assert len(ct) < 100_000
    with pytest.raises(DecompressionLimit):
        message.decrypt(ct, _provider(gpg, "cv25519"), max_output=1 << 20)
    sink = io.BytesIO()
    with pytest.raises(DecompressionLimit):
        streaming.decrypt_stream(io.BytesIO(ct), sink, _provider(gpg, "cv25519"), max_output=1 << 20)
    assert sink.getvalue() == b""  # the limit hits before anything is released


# --- sq, rnp ----------------------------------------------------------------------------------------


def test_sq_round_trips(tmp_path: Path) -> None:
    require_tool("sq")
    key, cert = tmp_path / "k.pgp", tmp_path / "c.pgp"
    run("sq", "key", "generate", "--userid", "<sq@example.org>", "--export", key)
    run("sq", "key", "extract-cert", "--output", cert, key)
    plaintext = os.urandom(8192)
    ct = message.encrypt(plaintext, read_certs(cert.read_bytes()))
    assert run("sq", "decrypt", "--recipient-key", key, stdin=ct) == plaintext
    theirs = run("sq", "encrypt", "--recipient-cert", cert, stdin=plaintext)
    assert message.decrypt(theirs, InProcessKeyProvider(read_certs(key.read_bytes()))).plaintext == plaintext


def test_rnp_round_trips(gpg: Gpg, tmp_path: Path) -> None:
    require_tool("rnp")
    home = tmp_path / "rnp"
    home.mkdir(mode=0o700)
    sec = tmp_path / "sec.pgp"
    sec.write_bytes(gpg.secret("cv25519") + gpg.secret("rsa3072"))
    run("rnpkeys", "--homedir", home, "--import", sec)
    for name in ("cv25519", "rsa3072"):
        plaintext = os.urandom(8192)
        ct = message.encrypt(plaintext, read_certs(gpg.public(name)))
        out = run("rnp", "--homedir", home, "--password", "", "--decrypt", "--output", "-", stdin=ct)
        assert out == plaintext
        theirs = run(
            "rnp", "--homedir", home, "-e", "-r", f"{name}@example.org", "--output", "-", stdin=plaintext
        )
        assert message.decrypt(theirs, _provider(gpg, name)).plaintext == plaintext


# --- SOP tools --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["sqop", "gosop"])
def test_sop_round_trips(tool: str, tmp_path: Path) -> None:
    require_tool(tool)
    key = run(tool, "generate-key", "--no-armor", "<sop@example.org>")
    cert = run(tool, "extract-cert", "--no-armor", stdin=key)
    kf, cf = tmp_path / "key.pgp", tmp_path / "cert.pgp"
    kf.write_bytes(key)
    cf.write_bytes(cert)
    for size in (0, 1, 8192):
        # ASCII: gosop 0.0.0 (GopenPGP 2.5) re-encodes non-UTF-8 input even with --as=binary
        plaintext = base64.b64encode(os.urandom(size))[:size]
        ct = message.encrypt(plaintext, read_certs(cert), armor=True)
        assert run(tool, "decrypt", kf, stdin=ct) == plaintext
        theirs = run(tool, "encrypt", "--as=binary", cf, stdin=plaintext)
        assert message.decrypt(theirs, InProcessKeyProvider(read_certs(key))).plaintext == plaintext
