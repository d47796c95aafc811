"""engine.keys.pkcs11 against a real SoftHSM2 token in a throwaway SOFTHSM2_CONF / token directory.

Keys are made with ``cryptography``, stored on the token with our import helpers, and every token result is
compared with what ``cryptography`` computes with the public halves.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519

from engine.errors import DecryptionFailed, InvalidArgument
from engine.keys import pkcs11 as pkcs11_mod
from engine.keys.errors import BadPassphrase, NoSecretKey
from engine.keys.pkcs11 import Pkcs11Key
from engine.keys.pkcs11_import import cv25519_secret, import_ec_key, import_rsa_key, import_x25519_key
from engine.keys.pkcs11_uri import parse_pkcs11_uri
from engine.keys.uri import AgentKeySpec, FileKeySpec, Pkcs11KeySpec, parse_key_spec
from tests.conftest import require_tool

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "123456"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """SoftHSM2 with two fresh tokens ("bulk" holding RSA-2048, X25519 and P-256 keys; "other" empty)."""
    require_tool("softhsm2-util")
    if pkcs11_mod.pkcs11 is None:
        if os.environ.get("PGPBULK_REQUIRE_PEERS"):
            pytest.fail("python-pkcs11 is required (PGPBULK_REQUIRE_PEERS=1) but not installed")
        pytest.skip("python-pkcs11 not installed")
    module = next((m for m in MODULE_CANDIDATES if os.path.exists(m)), None)
    if module is None:
        require_tool("libsofthsm2.so")  # skips locally, fails in CI
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    tokens = root / "tokens"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        mp.setenv("PGPBULK_PKCS11_LOCK", str(root / "lock"))
        for label in ("bulk", "other"):
            subprocess.run(
                [
                    "softhsm2-util",
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    "12345678",
                    "--pin",
                    PIN,
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
        pkcs11_mod.close_all()  # the library reads SOFTHSM2_CONF when it is initialized
        base = f"pkcs11:token=bulk?module-path={module}&pin-value={PIN}"
        rsa_key = rsa.generate_private_key(65537, 2048)
        n = rsa_key.private_numbers()
        import_rsa_key(
            base, n.public_numbers.n, n.public_numbers.e, n.d, n.p, n.q, label="old-rsa", key_id=b"\x01"
        )
        x_key = x25519.X25519PrivateKey.generate()
        # Through the OpenPGP form (big-endian MPI) and back, as a caller importing a gpg key would.
        import_x25519_key(
            base, cv25519_secret(x_key.private_bytes_raw()[::-1]), label="old-x25519", key_id=b"\x02"
        )
        p_key = ec.generate_private_key(ec.SECP256R1())
        import_ec_key(
            base, "nistp256", p_key.private_numbers().private_value, label="old-p256", key_id=b"\x03"
        )
        yield {
            "module": module,
            "conf": conf,
            "root": root,
            "rsa": rsa_key,
            "x25519": x_key,
            "p256": p_key,
            "uri": f"pkcs11:token=bulk;object=old-rsa;id=%01?module-path={module}&pin-value={PIN}",
        }
        pkcs11_mod.close_all()


def _x962(key: ec.EllipticCurvePrivateKey) -> bytes:
    enc, fmt = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    return key.public_key().public_bytes(enc, fmt)


def _uri(hsm: dict, obj: str, **query: str) -> str:
    q = {"module-path": hsm["module"], "pin-value": PIN, **query}
    return f"pkcs11:token=bulk;object={obj}?" + "&".join(f"{k}={v}" for k, v in q.items())


def test_rsa2048_decrypt(hsm: dict) -> None:
    key = Pkcs11Key(hsm["uri"])
    assert (key.algorithm, key.size) == ("rsa", 2048)
    for _ in range(20):  # ~1 in 256 ciphertexts has a leading zero byte; stripped ones must work too
        block = b"\x09" + os.urandom(32) + b"\x01\x02"
        c = hsm["rsa"].public_key().encrypt(block, padding.PKCS1v15())
        assert key.rsa_decrypt(c.lstrip(b"\0")) == block
    with pytest.raises(DecryptionFailed):  # not a PKCS#1 v1.5 block: opaque failure, no detail
        key.rsa_decrypt(b"\x01" * 200)


def test_x25519_and_p256_derive(hsm: dict) -> None:
    xkey = Pkcs11Key(_uri(hsm, "old-x25519"))
    eph = x25519.X25519PrivateKey.generate()
    want = eph.exchange(hsm["x25519"].public_key())
    point = eph.public_key().public_bytes_raw()
    assert xkey.algorithm == "x25519"
    assert xkey.ecdh_derive(b"\x40" + point) == want  # OpenPGP form, with the 0x40 prefix
    assert xkey.ecdh_derive(point) == want
    with pytest.raises(DecryptionFailed):
        xkey.ecdh_derive(bytes(32))  # low-order point: all-zero output is refused

    pkey = Pkcs11Key(_uri(hsm, "old-p256"))
    eph_p = ec.generate_private_key(ec.SECP256R1())
    peer = _x962(eph_p)
    assert pkey.algorithm == "nistp256"
    assert pkey.ecdh_derive(peer) == eph_p.exchange(ec.ECDH(), hsm["p256"].public_key())
    with pytest.raises(InvalidArgument):
        pkey.rsa_decrypt(b"\x01")


def test_lookup_errors(hsm: dict, tmp_path: Path) -> None:
    with pytest.raises(NoSecretKey):
        Pkcs11Key(_uri(hsm, "no-such-key"))
    with pytest.raises(InvalidArgument, match=r"\d private keys"):
        Pkcs11Key(f"pkcs11:token=bulk?module-path={hsm['module']}&pin-value={PIN}")
    with pytest.raises(BadPassphrase, match="needs a PIN"):
        Pkcs11Key(f"pkcs11:token=other?module-path={hsm['module']}")
    pin_file = tmp_path / "pin"
    pin_file.write_text("654321\n")
    with pytest.raises(BadPassphrase, match="wrong PIN"):  # token "other" was never logged in here
        Pkcs11Key(f"pkcs11:token=other?module-path={hsm['module']}&pin-source=file:{pin_file}")
    pin_file.write_text(PIN + "\n")
    with pytest.raises(NoSecretKey):  # right PIN from the file: the token opens, it just holds no key
        Pkcs11Key(f"pkcs11:token=other?module-path={hsm['module']}&pin-source=file:{pin_file}")


_WORKER = """
import json, sys, time
from engine.keys.pkcs11 import Pkcs11Key
uri, c, want = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
n, start = int(sys.argv[4]), float(sys.argv[5])
while time.time() < start:  # both processes log in at the same moment
    pass
key = Pkcs11Key(uri)
t0 = time.perf_counter()
ok = sum(key.rsa_decrypt(c) == want for _ in range(n))
print(json.dumps({"ok": ok, "rate": n / (time.perf_counter() - t0)}))
"""


def test_two_processes_concurrently(hsm: dict) -> None:
    block = b"\x09" + bytes(range(32)) + b"\x00\x10"
    c = hsm["rsa"].public_key().encrypt(block, padding.PKCS1v15())
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start, n = time.time() + 1.0, 150
    t0 = time.perf_counter()
    argv = [sys.executable, "-c", _WORKER, hsm["uri"], c.hex(), block.hex(), str(n), str(start)]
    pipe = subprocess.PIPE
    procs = [subprocess.Popen(argv, stdout=pipe, stderr=pipe, env=env) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        results.append(json.loads(out))
    wall = time.perf_counter() - t0 - max(0.0, start - time.time())
    assert [r["ok"] for r in results] == [n, n]
    rates = [round(r["rate"]) for r in results]
    print(f"\npkcs11 rsa2048, 2 processes: {rates} ops/s each (wall {wall:.2f} s incl. start-up)")


def test_fork_reinitializes(hsm: dict) -> None:
    key = Pkcs11Key(_uri(hsm, "old-x25519"))
    eph = x25519.X25519PrivateKey.generate()
    want = eph.exchange(hsm["x25519"].public_key())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ok = key.ecdh_derive(eph.public_key().public_bytes_raw()) == want
        except BaseException:
            ok = False
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    os.close(r)
    assert key.ecdh_derive(eph.public_key().public_bytes_raw()) == want
    clone = pickle.loads(pickle.dumps(key))  # what a process pool does with a provider
    assert clone.ecdh_derive(eph.public_key().public_bytes_raw()) == want


def test_throughput(hsm: dict) -> None:
    """Single-process ops/s (printed; run with -s). The floors are far below the expected rates."""
    rkey, xkey = Pkcs11Key(hsm["uri"]), Pkcs11Key(_uri(hsm, "old-x25519"))
    pkey = Pkcs11Key(_uri(hsm, "old-p256"))
    c = hsm["rsa"].public_key().encrypt(b"\x09" + bytes(34), padding.PKCS1v15())
    xpoint = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    ppoint = _x962(ec.generate_private_key(ec.SECP256R1()))
    rates = {}
    for name, n, op in (
        ("rsa2048", 150, lambda: rkey.rsa_decrypt(c)),
        ("x25519", 150, lambda: xkey.ecdh_derive(xpoint)),
        ("p256", 150, lambda: pkey.ecdh_derive(ppoint)),
    ):
        first = op()
        t0 = time.perf_counter()
        same = all(op() == first for _ in range(n))
        rates[name] = n / (time.perf_counter() - t0)
        assert same
    print("\npkcs11 ops/s (1 process): " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()))
    assert min(rates.values()) > 20


# -- the full chain: a gpg key moved onto the token decrypts what gpg encrypted ---------------------------
def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, timeout=120, check=True)


def test_gpg_key_on_token_matches_gpg(hsm: dict, gnupghome: Path) -> None:
    import re

    from engine.keys.providers import pkcs11_provider
    from engine.openpgp.keys import read_certs
    from engine.openpgp.packet import iter_packets
    from engine.openpgp.pkesk import Pkesk

    _gpg(gnupghome, "--quick-gen-key", "Token <token@example.org>", "ed25519", "cert", "never")
    fpr = re.search(rb"fpr:+([0-9A-F]{40}):", _gpg(gnupghome, "--with-colons", "-K").stdout).group(1).decode()
    for algo in ("rsa2048", "cv25519"):
        _gpg(gnupghome, "--quick-add-key", fpr, algo, "encr", "never")
    (secret_cert,) = read_certs(_gpg(gnupghome, "--export-secret-keys").stdout)
    public_certs = read_certs(_gpg(gnupghome, "--export").stdout)
    base = f"pkcs11:token=bulk?module-path={hsm['module']}&pin-value={PIN}"
    for sub in secret_cert.subkeys:  # the caller's job: numbers out of the OpenPGP secret key, into the token
        unlocked = sub.secret.unlock(None)
        fp = sub.key.fingerprint
        if sub.key.algorithm == 1:
            n = unlocked.private.private_numbers()
            import_rsa_key(
                base, n.public_numbers.n, n.public_numbers.e, n.d, n.p, n.q, label="gpg-rsa", key_id=fp
            )
        elif sub.key.algorithm == 18:
            import_x25519_key(base, unlocked.private.private_bytes_raw(), label="gpg-cv25519", key_id=fp)

    for label in ("gpg-rsa", "gpg-cv25519"):
        provider = pkcs11_provider(_uri(hsm, label), public_certs)
        (sub_fpr,) = provider.fingerprints()
        msg = _gpg(
            gnupghome, "--trust-model", "always", "-e", "-r", sub_fpr.hex().upper() + "!", stdin=b"hi\n"
        )
        shown = _gpg(gnupghome, "--show-session-key", "-d", stdin=msg.stdout).stderr
        want = re.search(rb"session key: '(\d+):([0-9A-F]+)'", shown)
        (pkesk,) = [Pkesk.parse(p) for p in iter_packets(msg.stdout) if p.tag == 1]
        got = provider.decrypt_session_key(pkesk)
        assert want is not None and (int(got.algorithm), got.key.hex().upper()) == (
            int(want.group(1)),
            want.group(2).decode(),
        )


# -- URIs: RFC 7512 and the --key forms (no token needed) ------------------------------------------------
def test_pkcs11_uri(tmp_path: Path) -> None:
    u = parse_pkcs11_uri(
        "PKCS11:token=My%20Token;object=old;id=%01%ff;type=private;x-vendor=v"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%2634"
    )
    assert (u.token, u.object, u.id, u.type, u.vendor) == (
        "My Token",
        "old",
        b"\x01\xff",
        "private",
        (("x-vendor", "v"),),
    )
    assert (u.module_path, u.pin()) == ("/usr/lib/softhsm/libsofthsm2.so", "12&34")
    assert "12&34" not in str(u) and "12%2634" not in str(u) and "12" not in repr(u)
    assert parse_pkcs11_uri(u.format(redact=False)) == u
    assert parse_pkcs11_uri("pkcs11:") == parse_pkcs11_uri("pkcs11:")  # matches everything
    pin = tmp_path / "pin"
    pin.write_text("9999\n")
    assert parse_pkcs11_uri(f"pkcs11:token=t?pin-source=file://{pin}").pin() == "9999"
    assert parse_pkcs11_uri(f"pkcs11:token=t?pin-source={pin}").pin() == "9999"
    assert parse_pkcs11_uri("pkcs11:slot-id=7").slot_id == 7
    for bad in (
        "pkcs11:token=a;token=b",
        "pkcs11:colour=red",
        "pkcs11:type=secret",
        "pkcs11:token",
        "pkcs11:?pin-value=1&pin-source=/p",
        "pkcs11:slot-id=x",
        "pkcs11:token=%ff",
        "p11:token=a",
        "pkcs11:?module-path=/a&module-path=/b",
    ):
        with pytest.raises(InvalidArgument):
            parse_pkcs11_uri(bad)


def test_key_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNUPGHOME", "/env/home")
    assert parse_key_spec("old.key") == FileKeySpec(Path("old.key"))
    assert parse_key_spec("file:a:b.key") == FileKeySpec(Path("a:b.key"))
    assert parse_key_spec("file:///abs/k.asc") == FileKeySpec(Path("/abs/k.asc"))
    assert parse_key_spec("agent:") == AgentKeySpec(None, "/env/home")
    assert parse_key_spec("agent:0xab12cd34ef56ab78", gnupghome="/cli") == AgentKeySpec(
        "AB12CD34EF56AB78", "/cli"
    )
    fpr = "F2E4 A00B 4FF0 362E CDC4  459C F482 98E5 84EE 0869"
    assert parse_key_spec("agent:" + fpr).fingerprint == fpr.replace(" ", "")
    spec = parse_key_spec("pkcs11:token=t;object=o?pin-value=secret")
    assert isinstance(spec, Pkcs11KeySpec) and spec.uri.object == "o" and "secret" not in str(spec)
    existing = tmp_path / "odd:name"
    existing.write_bytes(b"")
    assert parse_key_spec(str(existing)) == FileKeySpec(existing)
    for bad in ("", "agnet:ABC", "agent:XYZ", "agent:1234", "file:", "file://host/k"):
        with pytest.raises(InvalidArgument):
            parse_key_spec(bad)
