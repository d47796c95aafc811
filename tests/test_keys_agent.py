"""engine.keys.agent / assuan / sexp against a real gpg-agent in a throwaway GnuPG home.

The ciphertexts are made here with ``cryptography`` to the *public* keys gpg exported, so the agent is
checked against an independent implementation, not against itself.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519

from engine.errors import DecryptionFailed, StructuralError
from engine.keys import sexp
from engine.keys.agent import (
    AgentConnection,
    SecretKey,
    find_keygrip,
    shared_secret_from_point,
    unpad_pkcs1_v15,
)
from engine.keys.assuan import AssuanClient, escape_data, unescape
from engine.keys.errors import AssuanError, AssuanTimeout, BadPassphrase, NoSecretKey
from tests.conftest import require_tool

PASSPHRASE = "correct horse %25 battery + staple"  # "%" must survive Assuan data escaping


# -- helpers: make keys with gpg, read their public halves -------------------------------------------
def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def _make_key(home: Path, uid: str, subkeys: list[str], passphrase: str = "") -> None:
    pw = ["--passphrase-fd", "0"]
    _gpg(home, *pw, "--quick-gen-key", uid, "ed25519", "cert", "never", stdin=passphrase.encode())
    fpr = next(k.primary_fingerprint for k in _secret_keys(home) if uid in _uids(home, k))
    for algo in subkeys:
        _gpg(home, *pw, "--quick-add-key", fpr, algo, "encr", "never", stdin=passphrase.encode())


def _uids(home: Path, key: SecretKey) -> str:
    return _gpg(home, "--with-colons", "-k", key.primary_fingerprint).decode()


def _secret_keys(home: Path) -> list[SecretKey]:
    from engine.keys.agent import list_secret_keys

    return list_secret_keys(home)


def _public_subkeys(blob: bytes) -> dict[str, tuple[int, list[bytes]]]:
    """Public-subkey packets (tag 14) of an exported v4 key: key ID (hex) -> (algorithm, raw fields).

    RSA fields are [n, e]; ECDH fields are [curve OID, point] (RFC 9580 §5.5.5). A minimal reader, enough
    for the keys gpg exports."""
    import hashlib

    out: dict[str, tuple[int, list[bytes]]] = {}
    pos = 0
    while pos < len(blob):
        hdr = blob[pos]
        if hdr & 0x40:  # new format (RFC 9580 §4.2.1)
            tag, first = hdr & 0x3F, blob[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length, pos = ((first - 192) << 8) + blob[pos + 2] + 192, pos + 3
            else:
                length, pos = int.from_bytes(blob[pos + 2 : pos + 6], "big"), pos + 6
        else:  # old format, as gpg 2.2 writes: tag in bits 5-2, length size in bits 1-0
            tag, size = (hdr >> 2) & 0x0F, (1, 2, 4)[hdr & 3]
            length, pos = int.from_bytes(blob[pos + 1 : pos + 1 + size], "big"), pos + 1 + size
        body = blob[pos : pos + length]
        pos += length
        if tag != 14:
            continue
        algo, p, fields = body[5], 6, []
        if algo == 18:  # ECDH: OID with length octet, then the point MPI
            fields.append(body[p + 1 : p + 1 + body[p]])
            p += 1 + body[p]
        for _ in range(2 if algo == 1 else 1):
            bits = int.from_bytes(body[p : p + 2], "big")
            fields.append(body[p + 2 : p + 2 + (bits + 7) // 8])
            p += 2 + (bits + 7) // 8
        keyid = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()[-16:].upper()
        out[keyid] = (algo, fields)
    return out


@pytest.fixture(scope="module")
def agent_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One GnuPG home for the module (key generation is the slow part): unprotected cv25519 + rsa3072."""
    require_tool("gpg")
    require_tool("gpg-agent")
    require_tool("gpgconf")
    home = tmp_path_factory.mktemp("agent") / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    _make_key(home, "Bulk <bulk@example.org>", ["cv25519", "rsa3072"])
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def keys(agent_home: Path) -> dict[int, tuple[SecretKey, list[bytes]]]:
    """algorithm id -> (secret subkey with keygrip, public fields)."""
    pub = _public_subkeys(_gpg(agent_home, "--export"))
    out = {}
    for key in _secret_keys(agent_home):
        if key.fingerprint[-16:] in pub:
            out[key.algorithm] = (key, pub[key.fingerprint[-16:]][1])
    assert set(out) == {1, 18}
    return out


def _rsa_encrypt(fields: list[bytes], message: bytes) -> bytes:
    n, e = (int.from_bytes(f, "big") for f in fields)
    return rsa.RSAPublicNumbers(e, n).public_key().encrypt(message, padding.PKCS1v15())


def _x25519_encrypt(fields: list[bytes]) -> tuple[bytes, bytes]:
    """(ephemeral point 0x40||u, shared secret) for the recipient point in ``fields``."""
    oid, point = fields
    assert oid == bytes.fromhex("2b060104019755010501") and point[0] == 0x40  # Curve25519 legacy
    eph = x25519.X25519PrivateKey.generate()
    shared = eph.exchange(x25519.X25519PublicKey.from_public_bytes(point[1:]))
    return b"\x40" + eph.public_key().public_bytes_raw(), shared


# -- the real agent ----------------------------------------------------------------------------------
def test_rsa3072_session_key_roundtrip(agent_home: Path, keys: dict) -> None:
    key, fields = keys[1]
    with AgentConnection(agent_home) as agent:
        for _ in range(3):
            block = bytes([9]) + os.urandom(32) + b"\x12\x34"  # algo || AES-256 key || checksum
            c = _rsa_encrypt(fields, block)
            assert agent.pkdecrypt_rsa(key.keygrip, c) == block
        # A ciphertext whose top byte is small (no leading-zero byte needed) and one stripped of leading
        # zeros, as PKESK MPIs are, both work.
        c = _rsa_encrypt(fields, b"\x07" + bytes(16) + b"\0\0")
        assert agent.pkdecrypt_rsa(key.keygrip, c.lstrip(b"\0")) == b"\x07" + bytes(16) + b"\0\0"


def test_cv25519_shared_point(agent_home: Path, keys: dict) -> None:
    key, fields = keys[18]
    with AgentConnection(agent_home) as agent:
        eph_point, shared = _x25519_encrypt(fields)
        point = agent.ecdh_shared_point(key.keygrip, eph_point, b"\x28" + os.urandom(40))
        assert point == b"\x40" + shared
        assert shared_secret_from_point(point) == shared


def test_inventory(agent_home: Path, keys: dict) -> None:
    with AgentConnection(agent_home) as agent:
        grips = {k.keygrip: k for k in agent.keygrips()}
        for key, _ in keys.values():
            assert grips[key.keygrip].type == "D"
            assert agent.have_key(key.keygrip)
        assert not agent.have_key("00" * 20)
        rsa_key = keys[1][0]
        assert find_keygrip(agent.secret_keys(), rsa_key.fingerprint) == rsa_key
        assert find_keygrip(agent.secret_keys(), rsa_key.fingerprint[-16:].lower()) == rsa_key
        with pytest.raises(NoSecretKey):
            agent.pkdecrypt_rsa("AB" * 20, b"\x01" * 384)


def test_agent_error_is_typed(agent_home: Path) -> None:
    with AgentConnection(agent_home) as agent:
        with pytest.raises(AssuanError) as err:
            agent.transact("NO_SUCH_COMMAND")
        assert err.value.code == 275 or "Unknown" in err.value.text  # GPG_ERR_ASS_UNKNOWN_CMD
        assert agent.transact("GETINFO version").data.startswith(b"2.")  # connection still usable


def test_reconnects_after_fork(agent_home: Path, keys: dict) -> None:
    key, fields = keys[18]
    agent = AgentConnection(agent_home)
    eph_point, shared = _x25519_encrypt(fields)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must open its own connection, never write to the parent's socket
        try:
            ok = agent.ecdh_shared_point(key.keygrip, eph_point) == b"\x40" + shared
        except BaseException:
            ok = False
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    os.close(r)
    assert agent.ecdh_shared_point(key.keygrip, eph_point) == b"\x40" + shared  # parent's still fine
    clone = pickle.loads(pickle.dumps(agent))  # what a process pool does with a provider
    assert clone.ecdh_shared_point(key.keygrip, eph_point) == b"\x40" + shared
    clone.close()
    agent.close()


def test_throughput(agent_home: Path, keys: dict) -> None:
    """Measure ops/s on one connection (printed; run with -s). Floors are far below the expected rates."""
    (rkey, rfields), (ekey, efields) = keys[1], keys[18]
    c = _rsa_encrypt(rfields, b"\x09" + bytes(34))
    eph_point, shared = _x25519_encrypt(efields)
    with AgentConnection(agent_home) as agent:
        rates = {}
        for name, n, op, want in (
            ("cv25519", 300, lambda: agent.ecdh_shared_point(ekey.keygrip, eph_point), b"\x40" + shared),
            ("rsa3072", 30, lambda: agent.pkdecrypt_rsa(rkey.keygrip, c), b"\x09" + bytes(34)),
        ):
            assert op() == want
            t0 = time.perf_counter()
            results = {op() for _ in range(n)}
            rates[name] = n / (time.perf_counter() - t0)
            assert results == {want}
    print(f"\nagent ops/s: cv25519 {rates['cv25519']:.0f}, rsa3072 {rates['rsa3072']:.0f}")
    assert rates["cv25519"] > 50 and rates["rsa3072"] > 5


# -- passphrases through loopback pinentry ------------------------------------------------------------
def test_protected_key_loopback_and_wrong_passphrase(gnupghome: Path) -> None:
    require_tool("gpg-agent")
    with (gnupghome / "gpg-agent.conf").open("a") as conf:
        conf.write("s2k-count 65536\n")  # fast S2K keeps the test short; the loopback path is the same
    _make_key(gnupghome, "Locked <locked@example.org>", ["cv25519"], passphrase=PASSPHRASE)
    pub = _public_subkeys(_gpg(gnupghome, "--export"))
    key = next(k for k in _secret_keys(gnupghome) if k.fingerprint[-16:] in pub)
    eph_point, shared = _x25519_encrypt(pub[key.fingerprint[-16:]][1])
    subprocess.run(["gpgconf", "--homedir", str(gnupghome), "--reload", "gpg-agent"], check=True)  # no cache

    t0 = time.monotonic()
    wrong = AgentConnection(gnupghome, passphrase="wrong", timeout=20)
    with wrong, pytest.raises(BadPassphrase, match="Bad passphrase"):
        wrong.ecdh_shared_point(key.keygrip, eph_point)
    nothing = AgentConnection(gnupghome, timeout=20)  # no passphrase source at all
    with nothing, pytest.raises(BadPassphrase, match="no passphrase"):
        nothing.ecdh_shared_point(key.keygrip, eph_point)
    assert time.monotonic() - t0 < 15, "a wrong passphrase must fail fast, not hang"

    asked: list[str] = []

    def ask(grip: str) -> str:
        asked.append(grip)
        return PASSPHRASE

    with AgentConnection(gnupghome, passphrase=ask) as agent:
        assert agent.ecdh_shared_point(key.keygrip, eph_point) == b"\x40" + shared
    assert asked == [key.keygrip]


# -- Assuan framing and S-expressions without an agent ------------------------------------------------
def test_escape_roundtrip_and_line_limit() -> None:
    raw = bytes(range(256)) * 5
    assert unescape(escape_data(raw)) == raw
    lines = AssuanClient.data_lines(b"%\n\r" * 700)
    assert all(len(line) < 1000 for line in lines.split(b"\n"))
    assert b"".join(unescape(line[2:]) for line in lines.split(b"\n") if line) == b"%\n\r" * 700


def _fake_server(script: list[bytes], received: list[bytes]) -> tuple[str, threading.Thread]:
    """A Unix-socket peer that says each scripted line after reading one client line (``None``: wait)."""
    import tempfile

    path = tempfile.mktemp(prefix="assuan-", dir="/tmp")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        conn.sendall(b"OK hello\n")
        for reply in script:
            line = f.readline()
            received.append(line)
            if reply:
                conn.sendall(reply)
        f.read()  # until the client hangs up
        conn.close()
        srv.close()
        os.unlink(path)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return path, t


def test_inquire_status_and_timeout() -> None:
    received: list[bytes] = []
    script = [
        b"S PROGRESS x\n# comment\nINQUIRE SECRET\n",  # reply to the command
        b"",  # the D line
        b"D a%25b%0A\nD c\nOK done\n",  # reply to END
        b"",  # next command: never answered -> timeout
    ]
    path, t = _fake_server(script, received)
    client = AssuanClient(path, timeout=0.5)
    assert client.greeting == "hello"
    resp = client.transact("CMD x", inquire=lambda kw, args: b"p%w\n" if kw == "SECRET" else None)
    assert (resp.data, resp.ok, resp.status_value("PROGRESS")) == (b"a%b\nc", "done", "x")
    assert received[:3] == [b"CMD x\n", b"D p%25w%0A\n", b"END\n"]
    assert "p%w" not in repr(resp) and "a%b" not in repr(resp)
    with pytest.raises(AssuanTimeout):
        client.transact("HANG")
    assert client.closed
    t.join(3)


def test_sexp() -> None:
    value = [b"enc-val", [b"rsa", [b"a", sexp.mpi_bytes(b"\x80\x01")]]]
    blob = sexp.encode(value)
    assert blob == b"(7:enc-val(3:rsa(1:a3:\x00\x80\x01)))"
    assert sexp.parse(blob) == value
    assert sexp.value_of(sexp.parse(b"(5:value3:abc)"), b"value") == b"abc"
    for bad in (b"(3:ab)", b"(1:a", b"(01:a)", b"(1:a))", b"(a)"):
        with pytest.raises(StructuralError):
            sexp.parse(bad)


def test_pkcs1_unpad() -> None:
    assert unpad_pkcs1_v15(b"\x02" + b"\xff" * 8 + b"\x00msg") == b"msg"
    assert unpad_pkcs1_v15(b"\x00\x02" + b"\xff" * 8 + b"\x00msg") == b"msg"
    for bad in (b"\x01" + b"\xff" * 8 + b"\x00m", b"\x02" + b"\xff" * 7 + b"\x00m", b"\x02" + b"\xff" * 9):
        with pytest.raises(DecryptionFailed):
            unpad_pkcs1_v15(bad)


# -- the adapter to the OpenPGP KeyProvider, checked against gpg itself ---------------------------------
def gpg_encrypt_and_session_key(home: Path, fingerprint: str) -> tuple[list, str]:
    """Encrypt to exactly the subkey ``fingerprint`` with gpg; return the PKESKs and gpg's own
    ``--show-session-key`` answer ("ALGO:HEX")."""
    import re

    from engine.openpgp.packet import iter_packets
    from engine.openpgp.pkesk import Pkesk

    msg = _gpg(home, "--trust-model", "always", "-e", "-r", fingerprint + "!", stdin=b"hello bulk\n")
    proc = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--show-session-key",
            "-d",
        ],
        input=msg,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout == b"hello bulk\n"
    found = re.search(rb"session key: '(\d+):([0-9A-F]+)'", proc.stderr)
    assert found, proc.stderr
    pkesks = [Pkesk.parse(p) for p in iter_packets(msg) if p.tag == 1]
    return pkesks, f"{found.group(1).decode()}:{found.group(2).decode()}"


def test_agent_provider_matches_gpg(agent_home: Path, keys: dict) -> None:
    from engine.keys.providers import agent_provider

    provider = agent_provider(agent_home)
    assert {bytes.fromhex(k.fingerprint) for k, _ in keys.values()} <= provider.fingerprints()
    for key, _ in keys.values():
        pkesks, want = gpg_encrypt_and_session_key(agent_home, key.fingerprint)
        (pkesk,) = pkesks
        got = provider.decrypt_session_key(pkesk)
        assert f"{int(got.algorithm)}:{got.key.hex().upper()}" == want
    only_rsa = agent_provider(agent_home, fingerprint=keys[1][0].fingerprint)
    assert only_rsa.fingerprints() == {bytes.fromhex(keys[1][0].fingerprint)}


# -- a "card": SoftHSM2 behind gnupg-pkcs11-scd, reached through the real gpg-agent ---------------------
def test_card_rsa_via_gnupg_pkcs11_scd(
    gnupghome: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent forwards to scdaemon (here gnupg-pkcs11-scd on a SoftHSM2 token): the block comes back
    unpadded with ``S PADDING 0``, the PIN is asked through loopback, a wrong PIN fails fast."""
    from tests import cardsetup as cs

    hsm = cs.make_softhsm(tmp_path)
    for name, value in hsm.env().items():
        monkeypatch.setenv(name, value)  # the agent (and so the scd) inherits SOFTHSM2_CONF
    cs.init_token("card")
    key = rsa.generate_private_key(65537, 2048)
    cs.store_rsa_key(hsm, "card", key)  # with a certificate of the same CKA_ID: gnupg-pkcs11-scd needs both
    cs.make_scd_home(gnupghome, hsm)

    block = b"\x09" + os.urandom(32) + b"\x00\x01"
    c = key.public_key().encrypt(block, padding.PKCS1v15())
    t0 = time.monotonic()
    with AgentConnection(gnupghome, passphrase="000000", timeout=30) as agent:
        agent.transact("LEARN")  # writes the shadow key (the card stub) for the token key
        (grip,) = [k.keygrip for k in agent.keygrips() if k.type == "T"]
        with pytest.raises(BadPassphrase):
            agent.pkdecrypt_rsa(grip, c)
    assert time.monotonic() - t0 < 20, "a wrong PIN must fail fast, not hang"
    asked: list[str] = []
    with AgentConnection(gnupghome, passphrase=lambda g: asked.append(g) or "123456") as agent:
        cipher = sexp.encode([b"enc-val", [b"rsa", [b"a", sexp.mpi_bytes(c)]]])
        statuses = agent._pkdecrypt(grip, cipher).status
        assert ("PADDING", "0") in statuses
        assert agent.pkdecrypt_rsa(grip, c) == block
        t0 = time.perf_counter()
        assert all(agent.pkdecrypt_rsa(grip, c) == block for _ in range(50))
        print(f"\nagent -> gnupg-pkcs11-scd -> SoftHSM2 rsa2048: {50 / (time.perf_counter() - t0):.0f} ops/s")
    assert asked == [grip]
