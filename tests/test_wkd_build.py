"""WKD build: selection per User ID, sources, hostile input, several keys per address, the CLI."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.openpgp.constants import SignatureType
from engine.openpgp.keygen import export, generate
from engine.openpgp.keys import Cert, read_certs
from engine.openpgp.packet import iter_packets
from engine.openpgp.signature import Signature, Subpacket, certification_data, key_data
from engine.openpgp.userid import UserID
from engine.wkd import manifest as mf
from engine.wkd import wkd_hash
from engine.wkd.publish import build
from engine.wkd.sources import CertBlob, SourceProblem, split_binary, split_stream

NOW = int(time.time()) - 5


def _sig(cert: Cert, sig_type: int, data: bytes, created: int | None = None) -> Signature:
    created = cert.primary.created if created is None else created  # gpg ignores sigs older than the key
    priv = cert.secret.unlock().private  # type: ignore[union-attr]
    hashed = [
        Subpacket(2, created.to_bytes(4, "big")),
        Subpacket(33, b"\x04" + cert.fingerprint),
        Subpacket(16, cert.key_id),  # gpg 2.2 finds the issuer only by key ID
    ]
    return Signature.create(cert.primary, priv, sig_type, data, hashed)


def with_uids(cert: Cert, uids: list[bytes], broken: bool = False) -> bytes:
    """The public certificate with more User IDs, each self-certified (the signature spoiled if ``broken``)."""
    out = [cert.public().serialize()]
    for data in uids:
        sig = _sig(
            cert, SignatureType.POSITIVE_CERTIFICATION, certification_data(cert.primary, data)
        ).serialize()
        if broken:
            sig = sig[:-3] + bytes([sig[-3] ^ 0xFF]) + sig[-2:]
        out += [UserID(data).serialize(), sig]
    return b"".join(out)


def revoked(cert: Cert) -> bytes:
    rev = _sig(cert, SignatureType.KEY_REVOCATION, key_data(cert.primary))
    pub = cert.public().serialize()
    head = cert.primary.serialize()
    return head + rev.serialize() + pub[len(head) :]


def pub(uid: str, **kw: object) -> bytes:
    return export(generate(uid, **kw).public(), armor=False)  # type: ignore[arg-type]


def tree(root: Path) -> Path:
    return root / ".well-known" / "openpgpkey"


def uids_of(data: bytes) -> list[list[str]]:
    return [[u.text for u in c.user_ids] for c in read_certs(data)]


def run_cli(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    """``engine.cli.main`` with the wkd subcommands registered (until the lead adds the line)."""
    import engine.cli as cli
    from engine.wkd.cli import register

    orig = cli.build_parser

    def patched():  # type: ignore[no-untyped-def]
        parser = orig()
        wkd = parser._subparsers._group_actions[0].choices["wkd"]  # type: ignore[union-attr]
        wsub = wkd._subparsers._group_actions[0]  # type: ignore[union-attr]
        if "build" not in wsub.choices:
            register(wsub)
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)
    return cli.main(argv)


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four keys: two plain, one with two domains, one whose only User ID has no address."""
    d = tmp_path_factory.mktemp("ring")
    multi = generate("Joe Doe <Joe.Doe@Example.org>")
    parts = [
        with_uids(multi, [b"Joe at net <joe@example.net>"]),
        pub("Alice <alice@example.org>"),
        pub("bob@example.net"),
        pub("Nobody in particular"),
    ]
    (d / "ring.gpg").write_bytes(b"".join(parts))
    return d / "ring.gpg"


def test_build_publishes_one_user_id_per_address(tmp_path: Path, keyring: Path) -> None:
    report = build(tmp_path / "www", [str(keyring)], workers=0)
    t = tree(tmp_path / "www")
    joe = t / "example.org" / "hu" / wkd_hash("joe.doe")
    assert joe.exists() and (t / "example.org" / "policy").read_bytes() == b""
    assert uids_of(joe.read_bytes()) == [["Joe Doe <Joe.Doe@Example.org>"]]
    assert uids_of((t / "example.net" / "hu" / wkd_hash("joe")).read_bytes()) == [
        ["Joe at net <joe@example.net>"]
    ]
    assert report.keys == 4 and report.addresses == 4
    assert report.skipped["no mail address in user id"] == 1
    man = mf.load(mf.default_path(tmp_path / "www"))
    entry = man.by_address()["joe.doe@example.org"]
    assert entry["hash"] == wkd_hash("joe.doe") and entry["paths"] == {
        "advanced": f"example.org/hu/{entry['hash']}"
    }
    assert entry["fingerprints"] == [read_certs(joe.read_bytes())[0].fingerprint_hex]
    assert "keys/s" in report.summary() and "4 addresses published" in report.summary()


def test_domain_filter_and_direct_method(tmp_path: Path, keyring: Path) -> None:
    report = build(tmp_path / "w", [str(keyring)], domains=["EXAMPLE.NET"], method="direct", workers=0)
    t = tree(tmp_path / "w")
    assert sorted(p.name for p in (t / "hu").iterdir()) == sorted([wkd_hash("joe"), wkd_hash("bob")])
    assert (t / "policy").exists() and not (t / "example.org").exists()
    assert report.skipped["other domain"] == 2
    with pytest.raises(InvalidArgument, match="one domain"):
        build(tmp_path / "w2", [str(keyring)], method="direct", workers=0)
    build(tmp_path / "w3", [str(keyring)], domains=["example.org"], method="both", workers=0)
    t3 = tree(tmp_path / "w3")
    a, d = t3 / "example.org" / "hu" / wkd_hash("alice"), t3 / "hu" / wkd_hash("alice")
    assert a.read_bytes() == d.read_bytes() and a.stat().st_ino == d.stat().st_ino


def test_several_keys_for_one_address_newest_first(tmp_path: Path) -> None:
    old = pub("Joe <joe@example.org>", created=NOW - 86400 * 30)
    new = pub("Joe <joe@example.org>", created=NOW - 86400)
    (tmp_path / "a.gpg").write_bytes(old + new + old)  # the old one twice: published once
    report = build(tmp_path / "w", [str(tmp_path / "a.gpg")], workers=0)
    certs = read_certs((tree(tmp_path / "w") / "example.org" / "hu" / wkd_hash("joe")).read_bytes())
    assert [c.primary.created for c in certs] == [NOW - 86400, NOW - 86400 * 30]
    assert report.skipped["same key twice"] == 1 and report.addresses == 1


def test_expired_and_revoked_left_out_unless_asked(tmp_path: Path) -> None:
    rev = generate("Rev <rev@example.org>")
    ring = pub("Old <old@example.org>", created=NOW - 1000, expires=10) + revoked(rev)
    (tmp_path / "r.gpg").write_bytes(ring)
    report = build(tmp_path / "w", [str(tmp_path / "r.gpg")], domains=["example.org"], workers=0)
    assert report.addresses == 0 and report.skipped["key expired"] == 1 and report.skipped["key revoked"] == 1
    report = build(
        tmp_path / "w2", [str(tmp_path / "r.gpg")], include_expired=True, include_revoked=True, workers=0
    )
    man = mf.load(mf.default_path(tmp_path / "w2")).by_address()
    assert man["old@example.org"]["status"] == ["expired"] and man["rev@example.org"]["status"] == ["revoked"]
    block = read_certs((tree(tmp_path / "w2") / "example.org" / "hu" / wkd_hash("rev")).read_bytes())[0]
    assert block.is_revoked() and not block.subkeys and len(block.user_ids) == 1


def test_broken_self_signature_is_never_published(tmp_path: Path) -> None:
    cert = generate("Good <good@example.org>")
    data = with_uids(cert, [b"Forged <ceo@example.org>"], broken=True)
    (tmp_path / "b.gpg").write_bytes(data)
    report = build(tmp_path / "w", [str(tmp_path / "b.gpg")], workers=0)
    hu = tree(tmp_path / "w") / "example.org" / "hu"
    assert [p.name for p in hu.iterdir()] == [wkd_hash("good")]
    assert report.skipped["no valid self-signature"] == 1 and report.examples["no valid self-signature"] == [
        "ceo@example.org"
    ]


def test_hostile_addresses_refused_nothing_outside(tmp_path: Path) -> None:
    cert = generate("Fine <fine@example.org>")
    hostile = [
        b"<joe@../../etc>",
        b"<x@exa/mple.org>",
        b"<x@exa\\mple.org>",
        b"<x@..>",
        b"<x@a..b>",
        b"x@example.org\x01",
        b"<a\x00b@example.org>",
        b"<x@example.org/..>",
        b"<x@.example.org>",
    ]
    (tmp_path / "h.gpg").write_bytes(with_uids(cert, hostile))
    www = tmp_path / "www"
    report = build(www, [str(tmp_path / "h.gpg")], workers=0)
    outside = sorted(p.name for p in tmp_path.iterdir())
    assert outside == ["h.gpg", "www", "www.wkd-manifest.json"]
    assert sorted(p.name for p in tree(www).iterdir()) == ["example.org"]
    refused = sum(n for r, n in report.skipped.items() if r.startswith("refused address"))
    assert report.addresses == 1 and refused + report.skipped["no mail address in user id"] == len(hostile)
    assert refused >= 7


def test_non_ascii_domain_laid_out_as_gnupg(tmp_path: Path) -> None:
    (tmp_path / "u.gpg").write_bytes(pub("Ärger <ÄRGER@Bücher.Example>"))
    build(tmp_path / "w", [str(tmp_path / "u.gpg")], workers=0)
    assert (tree(tmp_path / "w") / "bücher.example" / "hu" / "ewd7piirpeasam9iz8or84x4be3xhxqw").exists()


def test_thousand_user_ids_on_one_key(tmp_path: Path) -> None:
    cert = generate("Main <main@example.org>")
    uids = [f"User {i} <u{i}@example.org>".encode() for i in range(1000)]
    (tmp_path / "k.gpg").write_bytes(with_uids(cert, uids))
    report = build(tmp_path / "w", [str(tmp_path / "k.gpg")], workers=0)
    assert report.addresses == 1001
    hu = tree(tmp_path / "w") / "example.org" / "hu"
    for i in (0, 499, 999):
        assert uids_of((hu / wkd_hash(f"u{i}")).read_bytes()) == [[f"User {i} <u{i}@example.org>"]]


def test_sources_armored_concatenated_trust_and_attributes(impl: str, tmp_path: Path) -> None:
    a, b = generate("A <a@example.org>"), generate("B <b@example.org>")
    armored = export(a.public()) + b"\nsome text between blocks\n" + export(b.public())
    blobs = list(split_stream(io.BufferedReader(io.BytesIO(armored)), "x.asc"))  # type: ignore[arg-type]
    assert [read_certs(x.data)[0].fingerprint for x in blobs] == [a.fingerprint, b.fingerprint]  # type: ignore[union-attr]
    trust, attr = b"\xb0\x02\x00\x00", b"\xd1\x05\x01\x02\x03\x04\x05"
    raw = export(a.public(), armor=False)
    pk, uid, sig, sub, bind = (bytes(p.raw) for p in iter_packets(raw))
    items = list(split_binary(io.BytesIO(trust + pk + uid + sig + trust + attr + sig + sub + bind), "t.gpg"))
    assert len(items) == 1 and isinstance(items[0], CertBlob) and items[0].data == raw
    big_uid = b"\xcd\xff" + (5000).to_bytes(4, "big") + b"u" * 5000
    items = list(split_binary(io.BytesIO(raw + big_uid + sig + sub + bind), "u.gpg", max_uid_bytes=1000))
    assert items[0].data == raw + sub + bind and "5000 bytes" in items[0].notes[0]  # type: ignore[union-attr]
    items = list(split_binary(io.BytesIO(raw + raw[:-10]), "cut.gpg"))
    assert isinstance(items[0], CertBlob) and isinstance(items[-1], SourceProblem)
    items = list(split_binary(io.BytesIO(raw + raw), "big.gpg", max_cert_bytes=len(raw) - 1))
    assert all(isinstance(x, SourceProblem) and "larger" in x.reason for x in items)


def test_cli_build_directory_and_stdin(
    tmp_path: Path, keyring: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "keys"
    d.mkdir()
    (d / "one.asc").write_bytes(export(generate("One <one@example.com>").public()))
    (d / "ignored.txt").write_bytes(b"not a key")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(keyring.read_bytes()))))
    rc = run_cli(monkeypatch, ["wkd", "build", "--out", str(tmp_path / "w"), "--workers", "0", str(d), "-"])
    out = capsys.readouterr().out
    assert rc == 0 and "5 addresses published" in out and "keys/s" in out
    assert (tree(tmp_path / "w") / "example.com" / "hu" / wkd_hash("one")).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.gpg"], "missing.gpg"),
        (["--domain", "../etc", "K"], "domain"),
        (["--method", "direct", "--domain", "a.org", "--domain", "b.org", "K"], "one domain"),
        (["--submission-address", "not an address", "K"], "address"),
    ],
)
def test_cli_bad_input_exit_2_one_line(
    tmp_path: Path,
    keyring: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [str(keyring) if a == "K" else a for a in args]
    rc = run_cli(monkeypatch, ["wkd", "build", "--out", str(tmp_path / "w"), "--workers", "0", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0] and err[0].startswith("pgpbulk: error:")


def test_worker_pool_gives_same_tree(tmp_path: Path, keyring: Path) -> None:
    build(tmp_path / "a", [str(keyring)] * 3, workers=0)
    build(tmp_path / "b", [str(keyring)] * 3, workers=2)
    files = {
        p.relative_to(tree(tmp_path / "a")): p.read_bytes()
        for p in tree(tmp_path / "a").rglob("*")
        if p.is_file()
    }
    other = {
        p.relative_to(tree(tmp_path / "b")): p.read_bytes()
        for p in tree(tmp_path / "b").rglob("*")
        if p.is_file()
    }
    assert files == other and len(files) == 6


@pytest.mark.slow
def test_64_mib_user_id_packet_and_10000_user_ids(tmp_path: Path) -> None:
    import tracemalloc

    cert = generate("Main <main@example.org>")
    raw = export(cert.public(), armor=False)
    huge = b"\xcd\xff" + (64 << 20).to_bytes(4, "big")
    with open(tmp_path / "huge.gpg", "wb") as f:
        f.write(raw + huge)
        f.write(b"x" * (64 << 20))
    tracemalloc.start()
    try:
        report = build(tmp_path / "w", [str(tmp_path / "huge.gpg")], workers=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.addresses == 1 and report.skipped["oversized packet dropped"] == 1
    assert peak < 16 << 20, f"peak {peak} bytes: the 64 MiB packet must never be read into memory"
    uids = [f"<u{i}@example.org>".encode() for i in range(10000)]
    (tmp_path / "many.gpg").write_bytes(with_uids(cert, uids))
    report = build(tmp_path / "w2", [str(tmp_path / "many.gpg")], workers=2)
    assert (
        report.addresses == 10001 and len(os.listdir(tree(tmp_path / "w2") / "example.org" / "hu")) == 10001
    )


def test_self_signature_older_than_key_is_refused_like_gpg(tmp_path: Path) -> None:
    cert = generate("Main <main@example.org>")
    uid = b"Back <back@example.org>"
    sig = _sig(cert, SignatureType.POSITIVE_CERTIFICATION, certification_data(cert.primary, uid), NOW - 3600)
    (tmp_path / "o.gpg").write_bytes(cert.public().serialize() + UserID(uid).serialize() + sig.serialize())
    for lean in (True, False):  # the rule lives in engine.openpgp.keys; the lean path applies it too
        report = build(tmp_path / f"w{lean}", [str(tmp_path / "o.gpg")], workers=0, lean=lean)
        assert report.addresses == 1 and report.examples["no valid self-signature"] == ["back@example.org"]


def test_every_wkd_option_has_help() -> None:
    import argparse

    import engine.cli as cli

    wkd = cli.build_parser()._subparsers._group_actions[0].choices["wkd"]  # type: ignore[union-attr]
    wsub = wkd._subparsers._group_actions[0]  # type: ignore[union-attr]
    missing = [
        f"{name} {a.option_strings or a.dest}"
        for name, sub in wsub.choices.items()
        for a in sub._actions
        if not a.help and not isinstance(a, argparse._HelpAction)
    ]
    assert "serve-config" in wsub.choices and missing == []


def test_demo_step_builds_a_tree() -> None:
    from engine.wkd.demo import demo_wkd_build

    out = io.StringIO()
    assert demo_wkd_build(out, count=30)
    assert "keys/s" in out.getvalue() and "holds only" in out.getvalue()


@pytest.mark.parametrize("method", ["advanced", "direct", "both"])
def test_manifest_entries_are_json_encoded_entries(tmp_path: Path, method: str) -> None:
    """The manifest's entry lines (formatted directly for the common file) are exactly what ``json``
    writes: quotes, backslashes and non-ASCII in addresses, a file with several keys, every method."""
    import json

    cert = generate("Fine <fine@example.org>")
    odd = [
        b'<q"uote@example.org>',
        b"<back\\slash@example.org>",
        "<jörg@example.org>".encode(),
        b"<z@example.org>",
    ]
    ring = with_uids(cert, odd) + pub("Joe <joe@example.org>", created=NOW - 9) + pub("Joe <joe@example.org>")
    (tmp_path / "m.gpg").write_bytes(ring)
    report = build(
        tmp_path / "w", [str(tmp_path / "m.gpg")], method=method, domains=["example.org"], workers=0
    )
    text = Path(report.manifest_path).read_text(encoding="utf-8")
    entries = mf.load(report.manifest_path).entries
    assert len(entries) == report.addresses == 6
    encode = json.JSONEncoder(ensure_ascii=False).encode
    lines = text.split("\n")[1 : 1 + len(entries)]
    assert lines == [encode(e) + ("," if i < len(entries) - 1 else "") for i, e in enumerate(entries)]
    assert any(len(e["fingerprints"]) == 2 for e in entries)
    assert {e["address"] for e in entries} >= {
        'q"uote@example.org',
        "back\\slash@example.org",
        "jörg@example.org",
    }


@pytest.mark.parametrize("method", ["advanced", "direct", "both"])
def test_worker_entry_text_is_the_json_of_the_parents_entry(tmp_path: Path, method: str) -> None:
    """A worker formats the manifest entry of a file of one key itself: the same text, key order
    included, as ``json`` gives for the parent's entry of that file, whatever needs escaping."""
    import json

    from engine.wkd.tree import Slot, TreeWriter, entry_text

    encode = json.JSONEncoder(ensure_ascii=False).encode
    (tmp_path / "stage").mkdir()
    writer = TreeWriter(tmp_path / "stage", method, b"")
    try:
        for local in ("joe.doe", 'q"uote', "back\\slash", "jörg", "tab\there"):
            fields = ("example.org", wkd_hash(local), local, f"{local}@example.org")
            slot = Slot(*fields, [("AB" * 20, 1700000000)], ["expired"], "5e" * 32)
            text = entry_text(method, *fields, "AB" * 20, 1700000000, "expired", "5e" * 32)
            assert text == encode(writer.entry(slot))
    finally:
        writer.close()


def test_merged_file_rewritten_in_place_to_its_new_length(tmp_path: Path) -> None:
    """A file the parent rewrites (several keys) is overwritten in place: longer or shorter, it holds
    exactly the new bytes."""
    from engine.wkd.tree import _overwrite

    path = tmp_path / "f"
    for data in (b"x" * 5000, b"short", b"y" * 9000, b"z"):
        _overwrite(path, data)
        assert path.read_bytes() == data


def test_many_merged_files_newest_key_first(tmp_path: Path) -> None:
    """The parent merges every file whose address has several keys (more of them than one index write
    holds): each file holds the newest key first, its manifest entry lists the keys in that order."""
    import hashlib
    import json

    from engine.wkd.build import Packed
    from engine.wkd.tree import TreeWriter, entry_text

    (tmp_path / "stage").mkdir()
    writer = TreeWriter(tmp_path / "stage", "advanced", b"", ["example.org"])
    hu = tmp_path / "stage" / "example.org" / "hu"
    batch = Packed(domains={"example.org"})
    count = 1100
    for i in range(count):  # a worker wrote the older key's file; the newer one's bytes came back
        hashed, old, new = f"h{i:05d}", b"o" * (i % 7 + 1), b"n" * 3
        (hu / hashed).write_bytes(old)
        for fpr, created, data in (("F1", 100, old), ("F2", 200, new)):
            sha = hashlib.sha256(data).hexdigest()
            text = entry_text(
                "advanced", "example.org", hashed, f"u{i}", f"u{i}@example.org", fpr, created, "valid", sha
            )
            batch.rows.append(("example.org", hashed, text, None if fpr == "F1" else data, None))
        batch.unwritten.append(len(batch.rows) - 1)
    writer.add_packed(batch)
    try:
        entries = [json.loads(text) for texts in writer.finish_entries() for text in texts]
    finally:
        writer.close()
    assert len(entries) == writer.addresses == count
    for i, entry in enumerate(entries):
        data = (hu / f"h{i:05d}").read_bytes()
        assert data == b"n" * 3 + b"o" * (i % 7 + 1) and entry["fingerprints"] == ["F2", "F1"]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
