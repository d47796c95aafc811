"""WKD output compared with GnuPG: gpg --import sees one User ID, gpg-wks-client hashes and tree layout agree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine.openpgp.keygen import export, generate
from engine.wkd.publish import build
from tests.conftest import require_tool

pytestmark = pytest.mark.peer
ADDRESSES = [
    "Joe.Doe@Example.org",
    "alice@example.org",
    "ÄRGER@example.org",
    "bob@example.net",
    "x+tag@example.net",
]


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys for ADDRESSES; the first also carries a second address on another domain."""
    from tests.test_wkd_build import with_uids

    path = tmp_path_factory.mktemp("ring") / "ring.gpg"
    first = with_uids(generate(f"Joe <{ADDRESSES[0]}>"), [b"Joe Work <joe@example.net>"])
    rest = [export(generate(f"Someone <{a}>").public(), armor=False) for a in ADDRESSES[1:]]
    path.write_bytes(first + b"".join(rest))
    return path


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "GNUPGHOME": str(home)}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_gpg_import_shows_exactly_one_user_id(tmp_path: Path, ring: Path, gnupghome: Path) -> None:
    gpg = require_tool("gpg")
    build(tmp_path / "www", [str(ring)], workers=0)
    tree = tmp_path / "www" / ".well-known" / "openpgpkey"
    published = sorted(p for p in tree.rglob("hu/*"))
    assert len(published) == 6
    for path in published:
        out = subprocess.run(
            [gpg, "--batch", "--with-colons", "--import-options", "show-only", "--import", str(path)],
            env=_env(gnupghome),
            capture_output=True,
            check=True,
        ).stdout.decode()
        uids = [line.split(":")[9] for line in out.splitlines() if line.startswith("uid:")]
        assert len(uids) == 1, (path, uids)
        assert path.parent.parent.name in uids[0].lower()  # the address of this file's domain
        assert "sub:" in out  # the encryption subkey is kept


def test_hashes_equal_gpg_wks_client(tmp_path: Path, ring: Path) -> None:
    wks = require_tool("gpg-wks-client")
    build(tmp_path / "www", [str(ring)], workers=0)
    tree = tmp_path / "www" / ".well-known" / "openpgpkey"
    theirs = subprocess.run(
        [wks, "--print-wkd-hash"],
        input="".join(f"{a}\n" for a in [*ADDRESSES, "joe@example.net"]).encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    expected = set()
    for line in theirs.splitlines():
        hashed, address = line.split(" ", 1)
        expected.add(f"{address.rsplit('@', 1)[1]}/hu/{hashed}")
    assert {f for f in _files(tree) if "/hu/" in f} == expected


def test_same_paths_as_gpg_wks_client_install_key(tmp_path: Path, ring: Path, gnupghome: Path) -> None:
    wks = require_tool("gpg-wks-client")
    build(tmp_path / "www", [str(ring)], workers=0)
    theirs = tmp_path / "wks"
    theirs.mkdir()
    (tmp_path / "ring.gpg").write_bytes(ring.read_bytes())
    from engine.openpgp.keys import read_certs

    for cert in read_certs(ring.read_bytes()):
        single = tmp_path / f"{cert.fingerprint_hex}.gpg"
        single.write_bytes(cert.serialize())
        for u in cert.user_ids:
            # -C: the openpgpkey directory; "./" forces reading the key from a file (gpg-wks-client(1))
            subprocess.run(
                [wks, "-C", str(theirs), "--install-key", f"./{single.name}", u.email],
                cwd=tmp_path,
                env=_env(gnupghome),
                capture_output=True,
                check=True,
            )
    ours = tmp_path / "www" / ".well-known" / "openpgpkey"
    assert _files(ours) == _files(theirs)
    assert len(_files(ours)) == 8  # six keys and two policy files


def test_gnupghome_source(tmp_path: Path, ring: Path, gnupghome: Path) -> None:
    gpg = require_tool("gpg")
    subprocess.run(
        [gpg, "--batch", "--import", str(ring)], env=_env(gnupghome), capture_output=True, check=True
    )
    extra = tmp_path / "extra.asc"
    extra.write_bytes(export(generate("Carol <carol@example.org>").public()))
    report = build(tmp_path / "www", [str(extra)], gnupghome=str(gnupghome), workers=0)
    assert report.keys == 6 and report.addresses == 7
