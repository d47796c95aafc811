"""``pgpbulk sop``: every implemented command, its options and its exit codes (in process through
``engine.sop.main``, and as ``python -m engine.sop``). Peers are in test_interop_matrix.py."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.openpgp import message
from engine.openpgp.constants import PacketTag
from engine.openpgp.keys import read_cert, read_certs
from engine.openpgp.packet import write_packet
from engine.sop import add_sop_parser, main
from engine.sop import errors as E

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
A8_X25519_OCB_MESSAGE = b"""-----BEGIN PGP MESSAGE-----

wV0GIQYSyD8ecG9jCP4VGkF3Q6HwM3kOk+mXhIjR2zeNqZMIhRmHzxjV8bU/gXzO
WgBM85PMiVi93AZfJfhK9QmxfdNnZBjeo1VDeVZheQHgaVf7yopqR6W1FT6NOrfS
aQIHAgZhZBZTW+CwcW1g4FKlbExAf56zaw76/prQoN+bAzxpohup69LA7JW/Vp0l
yZnuSj3hcFj0DfqLTGgr4/u717J+sPWbtQBfgMfG9AOIwwrUBqsFE9zW+f1zdlYo
bhF30A+IitsxxA==
-----END PGP MESSAGE-----
"""


def sop(*argv: str, data: bytes = b"") -> tuple[int, bytes]:
    out = io.BytesIO()
    code = main(list(argv), stdin=io.BytesIO(data), stdout=out)
    return code, out.getvalue()


def ok(*argv: str, data: bytes = b"") -> bytes:
    code, out = sop(*argv, data=data)
    assert code == 0, f"sop {argv[0]} exited {code}"
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two plain keys, one protected key (password file ends in a newline), their certs."""
    d = tmp_path_factory.mktemp("sop")
    (d / "pw").write_bytes(b"correct horse\n")
    made = {
        "alice": ok("generate-key", "Alice <alice@example.org>"),
        "bob": ok("generate-key", "--no-armor", "<bob@example.org>"),
        "carol": ok("generate-key", f"--with-key-password={d / 'pw'}", "<carol@example.org>"),
    }
    paths = {"pw": d / "pw", "dir": d}
    for name, key in made.items():
        (d / f"{name}.key").write_bytes(key)
        (d / f"{name}.cert").write_bytes(ok("extract-cert", data=key))
        paths[name], paths[f"{name}.cert"] = d / f"{name}.key", d / f"{name}.cert"
    return paths


def test_version_forms() -> None:
    assert ok("version").startswith(b"pgpbulk ")
    assert b"cryptography" in ok("version", "--backend")
    extended = ok("version", "--extended").decode().splitlines()
    assert extended[0].startswith("pgpbulk ") and len(extended) > 2
    assert ok("version", "--sop-spec").startswith(b"~draft-dkg-openpgp-stateless-cli-")
    assert sop("version", "--backend", "--extended")[0] == E.UNSUPPORTED_OPTION


def test_generated_keys_and_certs(files: dict[str, Path]) -> None:
    alice = files["alice"].read_bytes()
    assert alice.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    cert_text = files["alice.cert"].read_bytes()
    assert cert_text.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    cert = read_cert(cert_text)
    assert not cert.is_secret and cert.encryption_subkey() is not None
    assert [u.text for u in cert.user_ids] == ["Alice <alice@example.org>"]
    assert files["bob"].read_bytes()[0] & 0x80  # --no-armor
    binary = ok("extract-cert", "--no-armor", data=files["bob"].read_bytes())
    assert binary == read_cert(files["bob.cert"].read_bytes()).serialize()


@pytest.mark.parametrize("uids", [[], ["a <a@example.org>", "b <b@example.org>", "c"]])
def test_generate_key_any_number_of_user_ids(uids: list[str]) -> None:
    key = read_cert(ok("generate-key", *uids))
    assert [u.text for u in key.user_ids] == uids
    assert all(u.valid_at() for u in key.user_ids) and key.valid_at()
    assert key.encryption_subkey() is not None
    if uids:
        assert key.primary_user_id().text == uids[0]  # type: ignore[union-attr]


def test_profiles(tmp_path: Path) -> None:
    listed = ok("list-profiles", "generate-key").decode()
    assert listed.startswith("default: ") and "rfc9580" in listed
    assert b"rfc4880" in ok("list-profiles", "encrypt")
    assert sop("list-profiles", "armor")[0] == E.UNSUPPORTED_PROFILE
    assert sop("generate-key", "--profile", "nope", "x")[0] == E.UNSUPPORTED_PROFILE
    v6 = ok("generate-key", "--profile", "rfc9580", "v6")
    assert read_cert(v6).version == 6
    rsa = read_cert(ok("generate-key", "--profile", "rsa2048", "r"))
    assert rsa.encryption_subkey().bit_length == 2048  # type: ignore[union-attr]
    (tmp_path / "v6.cert").write_bytes(ok("extract-cert", data=v6))
    v1 = ok("encrypt", "--profile=rfc4880", str(tmp_path / "v6.cert"), data=b"x")
    assert message.parse_message(v1).version == 1
    (tmp_path / "v6.key").write_bytes(v6)
    assert ok("decrypt", str(tmp_path / "v6.key"), data=v1) == b"x"


@pytest.mark.parametrize("size", [0, 1, 8192, 3 << 20])
def test_round_trip_armored_and_binary(files: dict[str, Path], size: int) -> None:
    data = os.urandom(size)
    armored = ok("encrypt", str(files["alice.cert"]), data=data)
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----")
    assert ok("decrypt", str(files["alice"]), data=armored) == data
    binary = ok("encrypt", "--no-armor", str(files["alice.cert"]), data=data)
    assert binary[0] & 0x80 and ok("decrypt", str(files["alice"]), data=binary) == data


def test_many_recipients_and_keys(files: dict[str, Path]) -> None:
    msg = ok("encrypt", str(files["alice.cert"]), str(files["bob.cert"]), data=b"to both")
    assert len(message.parse_message(msg).pkesks) == 2
    for name in ("alice", "bob"):
        assert ok("decrypt", str(files[name]), data=msg) == b"to both"
    assert ok("decrypt", str(files["carol"]), str(files["bob"]), data=msg) == b"to both"  # carol locked


def test_forced_seipd_v2_to_v4_keys(files: dict[str, Path]) -> None:
    msg = ok("encrypt", "--profile=rfc9580", "--no-armor", str(files["alice.cert"]), data=b"aead")
    assert message.parse_message(msg).version == 2
    assert ok("decrypt", str(files["alice"]), data=msg) == b"aead"


def test_as_text(files: dict[str, Path]) -> None:
    text = "grüße\r\n".encode()
    msg = ok("encrypt", "--as=text", str(files["alice.cert"]), data=text)
    assert ok("decrypt", str(files["alice"]), data=msg) == text
    code, _ = sop("encrypt", "--as=text", str(files["alice.cert"]), data=b"\xff\xfe binary")
    assert code == E.EXPECTED_TEXT
    assert sop("encrypt", "--as=html", str(files["alice.cert"]))[0] == E.UNSUPPORTED_OPTION


def test_protected_key(files: dict[str, Path], tmp_path: Path) -> None:
    msg = ok("encrypt", str(files["carol.cert"]), data=b"secret")
    carol, pw = str(files["carol"]), str(files["pw"])
    assert ok("decrypt", f"--with-key-password={pw}", carol, data=msg) == b"secret"
    assert sop("decrypt", carol, data=msg)[0] == E.KEY_IS_PROTECTED
    (tmp_path / "wrong").write_bytes(b"wrong")
    assert (
        sop("decrypt", f"--with-key-password={tmp_path / 'wrong'}", carol, data=msg)[0] == E.KEY_IS_PROTECTED
    )
    assert read_certs(files["carol"].read_bytes())[0].secret.is_protected  # type: ignore[union-attr]
    (tmp_path / "latin1").write_bytes(b"\xe9t\xe9")
    assert (
        sop("generate-key", f"--with-key-password={tmp_path / 'latin1'}", "x")[0]
        == E.PASSWORD_NOT_HUMAN_READABLE
    )


def test_session_keys(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(5000)
    msg = ok("encrypt", str(files["bob.cert"]), data=data)
    out = tmp_path / "sk"
    assert ok("decrypt", f"--session-key-out={out}", str(files["bob"]), data=msg) == data
    text = out.read_text()
    algo, _, key = text.strip().partition(":")
    assert algo == "9" and len(key) == 64 and key == key.upper() and text.endswith("\n")
    assert ok("decrypt", f"--with-session-key={out}", data=msg) == data
    monkeypatch.setenv("SOP_SK", text)
    assert ok("decrypt", "--with-session-key=@ENV:SOP_SK", data=msg) == data
    wrong = tmp_path / "wrong-sk"
    wrong.write_text("9:" + "00" * 32)
    assert sop("decrypt", f"--with-session-key={wrong}", data=msg)[0] == E.CANNOT_DECRYPT
    assert ok("decrypt", f"--with-session-key={wrong}", str(files["bob"]), data=msg) == data  # falls back
    wrong.write_text("not a session key")
    assert sop("decrypt", f"--with-session-key={wrong}", data=msg)[0] == E.BAD_DATA
    assert sop("decrypt", f"--session-key-out={out}", str(files["bob"]), data=msg)[0] == E.OUTPUT_EXISTS
    failed = tmp_path / "not-written"
    assert sop("decrypt", f"--session-key-out={failed}", str(files["alice"]), data=msg)[0] == E.CANNOT_DECRYPT
    assert not failed.exists()


def test_session_key_out_to_file_descriptor(files: dict[str, Path]) -> None:
    msg = ok("encrypt", str(files["bob.cert"]), data=b"fd")
    read_end, write_end = os.pipe()
    try:
        assert ok("decrypt", f"--session-key-out=@FD:{write_end}", str(files["bob"]), data=msg) == b"fd"
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 200).startswith(b"9:")
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_decrypt_failures(files: dict[str, Path]) -> None:
    msg = ok("encrypt", "--no-armor", str(files["alice.cert"]), data=b"for alice")
    assert sop("decrypt", str(files["bob"]), data=msg)[0] == E.CANNOT_DECRYPT
    tampered = bytearray(msg)
    tampered[-5] ^= 1
    code, out = sop("decrypt", str(files["alice"]), data=bytes(tampered))
    assert code == E.CANNOT_DECRYPT and out == b""  # no plaintext released
    assert sop("decrypt", str(files["alice"]), data=b"\x00 not openpgp")[0] == E.BAD_DATA
    assert sop("decrypt", str(files["alice.cert"]), data=msg)[0] == E.BAD_DATA
    assert sop("decrypt", data=msg)[0] == E.MISSING_ARG
    assert sop("decrypt", "/nonexistent/key", data=msg)[0] == E.MISSING_INPUT
    assert sop("decrypt", "--with-password=x", str(files["alice"]), data=msg)[0] == E.UNSUPPORTED_OPTION
    assert sop("decrypt", "--verify-with=x", str(files["alice"]), data=msg)[0] == E.UNSUPPORTED_OPTION


def test_encrypt_failures(files: dict[str, Path], tmp_path: Path) -> None:
    assert sop("encrypt", data=b"x")[0] == E.MISSING_ARG
    assert sop("encrypt", str(files["alice"]), data=b"x")[0] == E.BAD_DATA  # a secret key, not a cert
    (tmp_path / "junk").write_bytes(b"junk")
    assert sop("encrypt", str(tmp_path / "junk"), data=b"x")[0] == E.BAD_DATA
    assert sop("encrypt", "--with-password=pw", str(files["alice.cert"]))[0] == E.UNSUPPORTED_OPTION
    assert sop("encrypt", "--sign-with=k", str(files["alice.cert"]))[0] == E.UNSUPPORTED_OPTION
    assert sop("extract-cert", data=files["alice.cert"].read_bytes())[0] == E.BAD_DATA


def test_usage_errors() -> None:
    assert sop()[0] == E.UNSUPPORTED_SUBCOMMAND
    assert sop("sign")[0] == E.UNSUPPORTED_SUBCOMMAND
    assert sop("encrypt", "--frobnicate")[0] == E.UNSUPPORTED_OPTION
    assert sop("decrypt", "--session-key-out")[0] == E.MISSING_ARG
    assert sop("list-profiles")[0] == E.MISSING_ARG


def test_special_designators(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALICE_CERT", files["alice.cert"].read_text())
    msg = ok("encrypt", "@ENV:ALICE_CERT", data=b"env")
    assert ok("decrypt", str(files["alice"]), data=msg) == b"env"
    monkeypatch.delenv("NO_SUCH_VAR_FOR_SOP", raising=False)
    assert sop("encrypt", "@ENV:NO_SUCH_VAR_FOR_SOP")[0] == E.MISSING_INPUT
    assert sop("encrypt", "@HTTP:example", data=b"x")[0] == E.UNSUPPORTED_SPECIAL_PREFIX
    assert sop("decrypt", "--session-key-out=@ENV:X", str(files["alice"]), data=msg)[0] == (
        E.UNSUPPORTED_SPECIAL_PREFIX
    )
    monkeypatch.chdir(tmp_path)
    Path("@ENV:ALICE_CERT").write_bytes(b"")
    assert sop("encrypt", "@ENV:ALICE_CERT", data=b"x")[0] == E.AMBIGUOUS_INPUT


def test_armor_and_dearmor(files: dict[str, Path]) -> None:
    key_bin = files["bob"].read_bytes()
    armored = ok("armor", data=key_bin)
    assert armored.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    assert ok("armor", data=armored) == armored  # idempotent
    assert ok("dearmor", data=armored) == key_bin
    assert ok("dearmor", data=key_bin) == key_bin  # idempotent
    cert_bin = ok("dearmor", data=files["bob.cert"].read_bytes())
    assert ok("armor", data=cert_bin).startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    msg = ok("encrypt", "--no-armor", str(files["bob.cert"]), data=os.urandom(3 << 20))
    assert ok("armor", data=msg).startswith(b"-----BEGIN PGP MESSAGE-----")
    assert ok("dearmor", data=ok("armor", data=msg)) == msg
    assert ok("armor", "--label=sig", data=msg).startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert sop("armor", data=b"plain text")[0] == E.BAD_DATA
    assert sop("dearmor", data=b"plain text")[0] == E.BAD_DATA
    lines = armored.split(b"\n")
    broken = b"\n".join([*lines[:3], b"*" * 8 + lines[3][8:], *lines[4:]])  # not base64
    assert sop("dearmor", data=broken)[0] == E.BAD_DATA


def test_pgpbulk_sop_registration() -> None:
    """What engine/cli.py does with add_sop_parser: ``pgpbulk sop ARGS`` runs main(ARGS)."""
    parser = argparse.ArgumentParser(prog="pgpbulk")
    add_sop_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sop", "encrypt", "--no-armor", "--as=binary", "cert"])
    assert args.sop_args == ["encrypt", "--no-armor", "--as=binary", "cert"]
    assert args.func(parser.parse_args(["sop", "version", "--extended"])) == 0
    assert args.func(parser.parse_args(["sop", "decrypt"])) == E.MISSING_ARG
    assert parser.parse_args(["sop", "--help"]).sop_args == ["--help"]  # sop's help, not pgpbulk's


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert sop("help") == (0, b"")
    assert sop("encrypt", "--help")[0] == 0
    assert "--no-armor" in capsys.readouterr().out


def test_module_entry_point_and_exit_codes(files: dict[str, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "engine.sop"]
    enc = subprocess.run(
        [*cmd, "encrypt", str(files["bob.cert"])], input=b"pipe", capture_output=True, env=env
    )
    assert enc.returncode == 0
    dec = subprocess.run([*cmd, "decrypt", str(files["bob"])], input=enc.stdout, capture_output=True, env=env)
    assert (dec.returncode, dec.stdout) == (0, b"pipe")
    bad = subprocess.run(
        [*cmd, "decrypt", str(files["alice"])], input=enc.stdout, capture_output=True, env=env
    )
    assert bad.returncode == E.CANNOT_DECRYPT and bad.stdout == b""
    assert bad.stderr.decode().count("\n") == 1 and "Traceback" not in bad.stderr.decode()


# --- v6 / X25519: no peer of issue 3 reads it, so our own round trip and RFC 9580 A.8 ----------------


@pytest.mark.parametrize("size", [0, 1, 8192])
def test_v6_x25519_round_trip(tmp_path: Path, size: int) -> None:
    secret = ok("generate-key", "--profile", "rfc9580", "<v6@example.org>")
    assert not secret.rstrip().splitlines()[-2].startswith(b"=")  # RFC 9580 6.1: no CRC for v6-only data
    (tmp_path / "v6.key").write_bytes(secret)
    (tmp_path / "v6.cert").write_bytes(ok("extract-cert", data=secret))
    data = os.urandom(size)
    msg = ok("encrypt", "--no-armor", str(tmp_path / "v6.cert"), data=data)
    parsed = message.parse_message(msg)
    assert parsed.version == 2 and parsed.pkesks[0].version == 6  # the cert advertises SEIPD v2
    assert ok("decrypt", str(tmp_path / "v6.key"), data=msg) == data


def test_rfc9580_a8_vector(tmp_path: Path) -> None:
    out = tmp_path / "sk"
    key = str(FIXTURES / "rfc9580_a4_v6_secret.asc")
    assert ok("decrypt", f"--session-key-out={out}", key, data=A8_X25519_OCB_MESSAGE) == b"Hello, world!"
    assert out.read_text().strip() == "7:DD708F6FA1ED65114D68D2343E7C2F1D"  # RFC 9580 A.8, AES-128
    assert ok("decrypt", f"--with-session-key={out}", data=A8_X25519_OCB_MESSAGE) == b"Hello, world!"


def test_v6_armored_message_has_no_crc(tmp_path: Path) -> None:
    secret = ok("generate-key", "--profile", "rfc9580", "v6")
    (tmp_path / "v6.cert").write_bytes(ok("extract-cert", data=secret))
    armored = ok("encrypt", str(tmp_path / "v6.cert"), data=b"x" * 100)
    assert not armored.rstrip().splitlines()[-2].startswith(b"=")  # RFC 9580 6.1
    (tmp_path / "v6.key").write_bytes(secret)
    assert ok("decrypt", str(tmp_path / "v6.key"), data=armored) == b"x" * 100


def test_unknown_session_key_packets_are_skipped_and_tag_20_refused(files: dict[str, Path]) -> None:
    msg = ok("encrypt", "--no-armor", str(files["bob.cert"]), data=b"skip it")
    alien = write_packet(PacketTag.PKESK, b"\x03" + b"\x11" * 8 + b"\x63\x00\x08\xff")  # algorithm 99
    assert ok("decrypt", str(files["bob"]), data=alien + msg) == b"skip it"
    ocb = write_packet(PacketTag.OCB_ENCRYPTED, b"\x01\x09\x02\x10" + bytes(40))  # LibrePGP, not read
    pkesks = b"".join(p.serialize() for p in message.parse_message(msg).pkesks)
    code, out = sop("decrypt", str(files["bob"]), data=pkesks + ocb)
    assert (code, out) == (E.CANNOT_DECRYPT, b"")
