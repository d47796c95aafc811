"""WKD served by a real nginx (loopback, test CA, our serve-config): check passes, and fails on broken trees."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.openpgp.keygen import export, generate
from engine.wkd import wkd_hash
from engine.wkd.check import check_address
from engine.wkd.publish import build
from engine.wkd.serve_config import nginx as nginx_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx not installed")
NAMES = ["openpgpkey.example.org", "example.org"]


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer, ca: bool, sans=()):  # type: ignore[no-untyped-def]
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return b.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA and a server certificate for the WKD names and 127.0.0.1."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert(
        "pgpbulk test CA",
        ca_key,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pgpbulk test CA")]),
        ca_key,
        True,
    )
    sans = [x509.DNSName(n) for n in NAMES] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    srv = _cert("openpgpkey.example.org", srv_key, ca.subject, ca_key, False, sans)
    paths = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Callable[..., str]]:
    """``serve(webroot, edit=None)`` starts nginx with our serve-config (optionally edited); returns HOST:PORT."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(webroot: Path, edit: Callable[[str], str] | None = None) -> str:
        port = _free_port()
        prefix = tmp_path / f"nginx-{port}"
        (prefix / "tmp").mkdir(parents=True)
        snippet = nginx_config(
            "example.org",
            str(webroot),
            listen=f"127.0.0.1:{port} ssl",
            certificate=str(pki["cert"]),
            certificate_key=str(pki["key"]),
        )
        if edit:
            snippet = edit(snippet)
        temp = "".join(
            f"{k}_temp_path {prefix}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = (
            f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
            f"http {{\naccess_log off;\n{temp}{snippet}\n}}\n"
        )
        (prefix / "nginx.conf").write_text(conf)
        cmd = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return f"127.0.0.1:{port}"
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ring") / "ring.gpg"
    path.write_bytes(
        b"".join(export(generate(f"U{i} <u{i}@example.org>").public(), armor=False) for i in range(3))
    )
    return path


def _check(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    from tests.test_wkd_build import run_cli

    return run_cli(monkeypatch, ["wkd", "check", *argv])


def test_check_passes_on_served_tree(
    tmp_path: Path,
    ring: Path,
    pki: dict[str, Path],
    serve,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    www = tmp_path / "www"
    report = build(www, [str(ring)], method="both", domains=["example.org"], workers=0)
    target = serve(www)
    argv = ["--cafile", str(pki["ca"]), "--connect", target]
    assert _check(monkeypatch, [*argv, "--manifest", report.manifest_path]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 3 and "advanced" in out and "3 passed, 0 failed" in out
    assert _check(monkeypatch, [*argv, "--method", "direct", "U1@Example.org"]) == 0
    assert "PASS u1@example.org direct" in capsys.readouterr().out
    assert _check(monkeypatch, [*argv, "nobody@example.org"]) == 1
    assert "HTTP status 404" in capsys.readouterr().out
    res = check_address("u2@example.org", cafile=str(pki["ca"]), connect="127.0.0.1:1")  # nothing listens
    assert not res.ok and "ConnectionRefused" in res.problems[0]


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("cors", "Access-Control-Allow-Origin"),
        ("type", "Content-Type is 'text/plain'"),
        ("policy", "policy file missing"),
        ("extra-uid", "expected only"),
        ("listing", ""),
    ],
)
def test_check_fails_on_broken_tree(
    tmp_path: Path,
    ring: Path,
    pki: dict[str, Path],
    serve,
    breakage: str,
    problem: str,  # type: ignore[no-untyped-def]
) -> None:
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    tree = www / ".well-known" / "openpgpkey" / "example.org"
    edit = None
    if breakage == "cors":
        edit = lambda s: s.replace('add_header Access-Control-Allow-Origin "*" always;', "")  # noqa: E731
    elif breakage == "type":
        edit = lambda s: s.replace("default_type application/octet-stream;", "default_type text/plain;")  # noqa: E731
    elif breakage == "policy":
        (tree / "policy").unlink()
    elif breakage == "extra-uid":
        two = generate("U0 <u0@example.org>")
        from tests.test_wkd_build import with_uids

        (tree / "hu" / wkd_hash("u0")).unlink()
        (tree / "hu" / wkd_hash("u0")).write_bytes(with_uids(two, [b"Other <other@example.org>"]))
    target = serve(www, edit)
    if breakage == "listing":  # the served config lists no directory and hides the versioned names
        import ssl
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        for path in ("/.well-known/openpgpkey/example.org/hu/", "/.well-known/"):
            req = urllib.request.Request(f"https://{target}{path}", headers={"Host": NAMES[0]})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, context=ctx)
            assert err.value.code in (403, 404)
        return
    res = check_address("u0@example.org", cafile=str(pki["ca"]), connect=target)
    assert not res.ok and any(problem in p for p in res.problems), res.line()


def test_requests_during_republish_all_succeed(
    tmp_path: Path, ring: Path, pki: dict[str, Path], serve
) -> None:  # type: ignore[no-untyped-def]
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    target = serve(www)
    stop, results = threading.Event(), []

    def hammer() -> None:
        while not stop.is_set():
            res = check_address("u1@example.org", cafile=str(pki["ca"]), connect=target)
            results.append(res.ok or res.line())

    t = threading.Thread(target=hammer)
    t.start()
    try:
        for _ in range(5):
            build(www, [str(ring)], workers=0)
    finally:
        stop.set()
        t.join()
    assert results and all(r is True for r in results), [r for r in results if r is not True][:3]
