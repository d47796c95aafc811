"""Keys against real peers: gpg 2.2, sq and rnp make keys we parse; gpg and sq accept the keys we make."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.openpgp import keygen
from engine.openpgp.constants import PacketTag
from engine.openpgp.keys import Cert, read_cert, read_certs
from engine.openpgp.packet import iter_packets
from engine.openpgp.secret_key import WrongPassphrase
from tests.conftest import require_tool

pytestmark = pytest.mark.peer
PW = "peer-pass"


def gpg(home: Path, *args: str, passphrase: str = PW, stdin: bytes | None = None) -> bytes:
    cmd = [require_tool("gpg"), "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback"]
    cmd += ["--passphrase", passphrase, *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, check=True).stdout


def gpg_fprs(home: Path, who: str) -> list[str]:
    """Primary then subkey fingerprints as gpg prints them."""
    out = gpg(home, "--with-colons", "--fingerprint", "--fingerprint", "--list-keys", who).decode()
    return [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")]


def new_key(home: Path, uid: str, algo: str, sub: str | None, passphrase: str = PW) -> str:
    gpg(home, "--quick-gen-key", uid, algo, "default", "never", passphrase=passphrase)
    fpr = gpg_fprs(home, uid)[0]
    if sub:
        gpg(home, "--quick-add-key", fpr, sub, "encr", "never", passphrase=passphrase)
    return fpr


GPG_KINDS = [
    ("ed25519", "cv25519"),
    ("rsa2048", "rsa2048"),
    ("rsa3072", "rsa3072"),
    ("nistp256", "nistp256"),
    ("nistp384", "nistp384"),
    ("nistp521", "nistp521"),
    ("dsa2048", "elg2048"),
    pytest.param("rsa4096", "rsa4096", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("algo", "sub"), GPG_KINDS)
def test_gpg_keys_parse_with_gpg_fingerprints_and_unlock(gnupghome: Path, algo: str, sub: str) -> None:
    uid = f"{algo} <{algo}@example.org>"
    new_key(gnupghome, uid, algo, sub)
    want = gpg_fprs(gnupghome, uid)
    cert = read_cert(gpg(gnupghome, "--export", uid))
    assert [cert.fingerprint_hex] + [s.key.fingerprint_hex for s in cert.subkeys] == want
    assert cert.valid_at() and cert.user_ids[0].email == f"{algo}@example.org"
    assert cert.encryption_subkey().fingerprint_hex == want[1]  # type: ignore[union-attr]
    if not algo.startswith("dsa"):  # ElGamal is read-only; DSA primary still verifies its bindings above
        assert cert.encryption_subkey().to_crypto() is not None  # type: ignore[union-attr]
    armored = gpg(gnupghome, "--armor", "--export-secret-keys", uid)
    secret = read_cert(armored)
    assert secret.is_secret and secret.fingerprint_hex == want[0]
    for sk in secret.secret_keys():
        assert sk.is_protected and sk.usage == 254
        with pytest.raises(WrongPassphrase):
            sk.unlock("wrong passphrase")
        if sk.algorithm != 16:  # ElGamal secrets have no cryptography object
            assert sk.unlock(PW).private is not None


def _pkesk_key_ids(message: bytes) -> list[bytes]:
    return [bytes(p.body[1:9]) for p in iter_packets(message) if p.tag == PacketTag.PKESK]


def _gpg_choice(home: Path, who: str) -> bytes:
    msg = gpg(home, "--trust-model", "always", "--encrypt", "-r", who, stdin=b"hello")
    (kid,) = _pkesk_key_ids(msg)
    return kid


def test_encryption_subkey_choice_like_gpg(gnupghome: Path) -> None:
    uid = "Sel <sel@example.org>"
    gpg(
        gnupghome,
        "--faked-system-time",
        "20180101T000000",
        "--quick-gen-key",
        uid,
        "ed25519",
        "default",
        "never",
    )
    fpr = gpg_fprs(gnupghome, uid)[0]
    add = ("--quick-add-key", fpr, "cv25519", "encr")
    gpg(gnupghome, "--faked-system-time", "20190101T000000", *add, "never")  # old, valid
    gpg(gnupghome, "--faked-system-time", "20200101T000000", *add, "1d")  # newer, expired
    cert = read_cert(gpg(gnupghome, "--export", uid))
    assert cert.encryption_subkey().key_id == _gpg_choice(gnupghome, uid)  # type: ignore[union-attr]
    assert cert.encryption_subkey().created < cert.subkeys[1].created  # type: ignore[union-attr]

    gpg(gnupghome, *add, "never")  # newest, then revoked with gpg --edit-key
    cert = read_cert(gpg(gnupghome, "--export", uid))
    assert cert.encryption_subkey().key_id == _gpg_choice(gnupghome, uid) == cert.subkeys[2].key.key_id  # type: ignore[union-attr]
    script = b"key 3\nrevkey\ny\n0\n\ny\nsave\n"
    gpg(gnupghome, "--command-fd", "0", "--edit-key", fpr, stdin=script)
    cert = read_cert(gpg(gnupghome, "--export", uid))
    assert cert.subkeys[2].revocations
    assert cert.encryption_subkey().key_id == _gpg_choice(gnupghome, uid) == cert.subkeys[0].key.key_id  # type: ignore[union-attr]


def test_our_keys_accepted_by_gpg(gnupghome: Path, tmp_path: Path) -> None:
    ours = [
        keygen.generate("Ed <ed@example.org>", passphrase="k1"),
        keygen.generate("Rs <rs@example.org>", "rsa3072"),
    ]
    for cert, pw in zip(ours, ["k1", ""], strict=True):
        path = tmp_path / f"{cert.fingerprint_hex}.asc"
        path.write_bytes(keygen.export(cert, secret=True))
        gpg(gnupghome, "--import", str(path), passphrase=pw)
        listing = gpg(gnupghome, "--with-colons", "--list-keys", cert.fingerprint_hex).decode()
        pub = next(ln for ln in listing.splitlines() if ln.startswith("pub:"))
        assert pub.split(":")[1] not in ("i", "r", "e", "d")  # not invalid / revoked / expired / disabled
        assert gpg_fprs(gnupghome, cert.fingerprint_hex) == [
            cert.fingerprint_hex,
            cert.subkeys[0].key.fingerprint_hex,
        ]
        who = cert.user_ids[0].email
        assert _gpg_choice(gnupghome, who) == cert.encryption_subkey().key_id  # type: ignore[union-attr]
        msg = gpg(gnupghome, "--trust-model", "always", "--encrypt", "-r", who, stdin=b"round trip")
        assert gpg(gnupghome, "--decrypt", stdin=msg, passphrase=pw) == b"round trip"


def test_our_keys_accepted_by_sq(tmp_path: Path) -> None:
    sq = require_tool("sq")
    cert = keygen.generate("Sq <sq@example.org>", passphrase="k2")
    path = tmp_path / "k.asc"
    path.write_bytes(keygen.export(cert, secret=True))
    out = subprocess.run([sq, "inspect", str(path)], capture_output=True, check=True, text=True).stdout
    assert "Transferable Secret Key" in out and cert.fingerprint_hex in out
    assert cert.subkeys[0].key.fingerprint_hex in out and "Invalid" not in out
    assert "transport encryption" in out and "Sq <sq@example.org>" in out


def _sq_generate(tmp_path: Path, uid: str, cipher_suite: str) -> bytes:
    sq = require_tool("sq")
    out = tmp_path / f"{cipher_suite}.pgp"
    subprocess.run(
        [sq, "key", "generate", "--userid", uid, "--cipher-suite", cipher_suite, "--export", str(out)],
        capture_output=True,
        check=True,
    )
    return out.read_bytes()


@pytest.mark.parametrize("suite", ["cv25519", "rsa3k"])
def test_sq_generated_keys(tmp_path: Path, suite: str) -> None:
    sq = require_tool("sq")
    data = _sq_generate(tmp_path, f"S <{suite}@example.org>", suite)
    cert = read_cert(data)
    assert cert.is_secret and cert.valid_at()
    listing = subprocess.run(
        [sq, "inspect", str(tmp_path / f"{suite}.pgp")], capture_output=True, check=True, text=True
    ).stdout
    assert cert.fingerprint_hex in listing
    assert all(s.key.fingerprint_hex in listing for s in cert.subkeys)
    enc = cert.encryption_subkey()
    assert enc is not None and cert.secret_for(enc.fingerprint).unlock().private is not None  # type: ignore[union-attr]
    signing = [s for s in cert.subkeys if s.flags() & 0x02]
    assert signing, "sq makes a signing subkey with a primary key binding (back-signature)"


def test_rnp_generated_key(tmp_path: Path) -> None:
    rnpkeys = require_tool("rnpkeys")
    home = tmp_path / "rnp"
    home.mkdir()
    subprocess.run(
        [
            rnpkeys,
            "--homedir",
            str(home),
            "--generate-key",
            "--userid",
            "R <rnp@example.org>",
            "--password",
            "",
        ],
        capture_output=True,
        check=True,
    )
    pub = subprocess.run(
        [rnpkeys, "--homedir", str(home), "--export-key", "rnp@example.org"], capture_output=True, check=True
    ).stdout
    certs = read_certs(pub)
    listing = subprocess.run(
        [rnpkeys, "--homedir", str(home), "--list-keys", "--with-sigs"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.upper()
    (cert,) = certs
    assert cert.valid_at() and cert.fingerprint_hex[-16:] in listing.replace(" ", "")
    assert cert.encryption_subkey() is not None


def test_cert_serialize_is_gpg_export(gnupghome: Path) -> None:
    new_key(gnupghome, "Ser <ser@example.org>", "ed25519", "cv25519")
    data = gpg(gnupghome, "--export", "ser@example.org")
    cert: Cert = read_cert(data)
    packets = [(p.tag, bytes(p.body)) for p in iter_packets(data)]  # gpg writes old-format headers
    assert [(p.tag, bytes(p.body)) for p in iter_packets(cert.serialize())] == packets
