"""The lean WKD selection against the reference (full Cert) path; Cert rules it relies on; armor keyrings."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import time
from pathlib import Path

import pytest

from engine.armor import ArmorReader, armor
from engine.openpgp.constants import SignatureType
from engine.openpgp.keygen import export, generate
from engine.openpgp.keys import Cert, read_cert, read_certs
from engine.openpgp.packet import write_packet
from engine.openpgp.signature import Signature, Subpacket, binding_data, certification_data, key_data
from engine.openpgp.userid import UserID
from engine.wkd.build import BuildOptions, Packed, select_one, select_packed
from engine.wkd.lean import LeanCert, Unusual
from engine.wkd.lean_select import select_general, select_plain
from engine.wkd.sample import BASE_TIME, sample_keyring
from engine.wkd.sources import CertBlob, SourceProblem, split_stream

NOW = BASE_TIME + 86400


def _sig(cert: Cert, sig_type: int, data: bytes, created: int, extra: tuple[Subpacket, ...] = ()) -> bytes:
    priv = cert.secret.unlock().private  # type: ignore[union-attr]
    hashed = [Subpacket(2, created.to_bytes(4, "big")), Subpacket(33, b"\x04" + cert.fingerprint), *extra]
    return Signature.create(cert.primary, priv, sig_type, data, hashed).serialize()


def _uid(cert: Cert, text: bytes, created: int, *extra: Subpacket, sig_type: int = 0x13) -> bytes:
    data = certification_data(cert.primary, text)
    return UserID(text).serialize() + _sig(cert, sig_type, data, created, extra)


def _edge_keys() -> list[bytes]:
    """Keys exercising each rule: revoked User ID and key, expiring key via a non-domain primary User ID,
    broken and pre-creation self-signatures, newer self-signature winning, an RSA key, v6 (fallback)."""
    t = BASE_TIME - 86400 * 100
    out = []
    a = generate("A <a@example.org>", created=t)
    rev = _sig(
        a,
        SignatureType.CERTIFICATION_REVOCATION,
        certification_data(a.primary, b"A2 <a2@example.org>"),
        t + 9,
    )
    out.append(a.public().serialize() + _uid(a, b"A2 <a2@example.org>", t + 5) + rev)
    b = generate("B <b@example.org>", created=t)  # expired through its primary User ID in another domain
    out.append(
        b.public().serialize()
        + _uid(
            b, b"B <b@example.net>", t + 5, Subpacket(25, b"\x01"), Subpacket(9, (3600).to_bytes(4, "big"))
        )
    )
    c = generate("C <c@example.org>", created=t)
    broken = bytearray(_uid(c, b"<forged@example.org>", t + 1))
    broken[-3] ^= 0xFF
    out.append(c.public().serialize() + bytes(broken) + _uid(c, b"<old@example.org>", t - 10))
    d = generate("D <d@example.org>", created=t)
    newer = _uid(d, b"D <d@example.org>", t + 50, Subpacket(9, (60).to_bytes(4, "big")))
    out.append(d.public().serialize() + newer[len(UserID(b"D <d@example.org>").serialize()) :])
    e = generate("E <e@example.org>", created=t)
    head = e.primary.serialize()
    out.append(
        head
        + _sig(e, SignatureType.KEY_REVOCATION, key_data(e.primary), t + 3)
        + e.public().serialize()[len(head) :]
    )
    f = generate("F <f@example.org>", created=t)  # one signature per User ID, two of them not live
    lapsed = _uid(f, b"F2 <f2@example.org>", t + 5, Subpacket(3, (60).to_bytes(4, "big")))
    out.append(f.public().serialize() + lapsed + _uid(f, b"F3 <f3@example.org>", NOW + 86400))
    out.append(export(generate("R <r@example.org>", "rsa2048", created=t).public(), armor=False))
    out.append(export(generate("V6 <v6@example.org>", version=6, created=t).public(), armor=False))
    return out


@pytest.mark.parametrize("flags", [(False, False), (True, True)])
def test_lean_equals_reference(impl: str, flags: tuple[bool, bool]) -> None:
    ring = sample_keyring(60, 7)
    blobs = [b for b in split_stream(io.BufferedReader(io.BytesIO(ring)), "s") if isinstance(b, CertBlob)]  # type: ignore[arg-type]
    blobs += [CertBlob("edge", i, data) for i, data in enumerate(_edge_keys() + _issuer_keys())]
    for domains in (frozenset(["example.org"]), None):
        for blob in blobs:
            lean = select_one(BuildOptions(domains, *flags, now=NOW), blob)
            ref = select_one(BuildOptions(domains, *flags, now=NOW, lean=False), blob)
            assert lean.records == ref.records and sorted(lean.skipped) == sorted(ref.skipped), blob.offset
    reasons = {r for blob in blobs for r, _ in select_one(BuildOptions(None, now=NOW), blob).skipped}
    assert {"user id revoked", "key expired", "no valid self-signature", "key revoked"} <= reasons


@pytest.mark.parametrize("now", [NOW, BASE_TIME - 86400 * 200])
def test_plain_shape_equals_general_rules(impl: str, now: int) -> None:
    """The one-pass selection of the common shape decides as the general rules (reasons in the same
    order) and declines every other certificate before verifying or reporting anything."""
    ring = sample_keyring(60, 7)
    blobs = [b for b in split_stream(io.BufferedReader(io.BytesIO(ring)), "s") if isinstance(b, CertBlob)]  # type: ignore[arg-type]
    datas = [b.data for b in blobs] + _edge_keys()[:-1]  # not the v6 key: LeanCert refuses it
    taken = declined = 0
    reasons: set[str] = set()
    for data in datas:
        for domains in (frozenset(["example.org"]), None):
            plain_left: list[tuple[str, str]] = []
            cert = LeanCert(data)
            got = select_plain(cert, domains, now, plain_left)
            general_left: list[tuple[str, str]] = []
            want = select_general(LeanCert(data), domains, False, False, now, general_left)
            if got is None:
                declined += 1
                assert plain_left == [] and cert.seconds_verify == 0.0
                continue
            taken += 1
            assert got == want and plain_left == general_left
            reasons.update(r for r, _ in plain_left)
            assert select_general(LeanCert(data), domains, True, True, now, []) == want  # flags are moot
    assert taken >= len(datas) and declined >= 6  # multi-signature User ID, key expiry, key revocation
    if now == NOW:
        assert {"no valid self-signature", "self-signature expired or not yet valid"} <= reasons
    else:
        assert "key created in the future" in reasons


def _issuer_keys() -> list[bytes]:
    """Self-signatures a kernel must refuse or accept before the public-key operation: another issuer
    (fingerprint or key ID), a key ID only, a critical unknown subpacket, a critical known one; User IDs
    with UTF-8, other-domain, refused and missing addresses; an RSA key; subkey bindings not yet valid,
    expired, or expiring the subkey; one address on two User IDs, the older one primary."""
    t = BASE_TIME - 86400 * 100
    g = generate("G <g@example.org>", created=t)
    other = generate("O <o@example.org>", created=t).fingerprint
    priv = g.secret.unlock().private  # type: ignore[union-attr]

    def uid(text: bytes, *hashed: Subpacket) -> bytes:
        sig = Signature.create(g.primary, priv, 0x13, certification_data(g.primary, text), list(hashed))
        return UserID(text).serialize() + sig.serialize()

    when = Subpacket(2, (t + 7).to_bytes(4, "big"))
    out = [
        g.public().serialize()
        + uid(b"<foreign@example.org>", when, Subpacket(33, b"\x04" + other))
        + uid(b"<kid@example.org>", when, Subpacket(16, g.fingerprint[-8:]))
        + uid(b"<otherkid@example.org>", when, Subpacket(16, other[-8:]))
        + uid(b"<nokid@example.org>", when)
        + uid(b"<critical@example.org>", when, Subpacket(100, b"x", critical=True))
        + uid(b"<known@example.org>", when, Subpacket(27, b"\x03", critical=True))
        + _uid(g, "Jörg <jörg@Example.ORG>".encode(), t + 8)
        + _uid(g, b"<x@example.net>", t + 9)
        + _uid(g, b"<a@b@example.org>", t + 9)
        + _uid(g, b"no address", t + 9)
    ]
    out.append(export(generate("R2 <r2@example.org>", "rsa2048", created=t).public(), armor=False))
    head = g.primary.serialize() + uid(b"P <p@example.org>", when)
    sub = g.public().subkeys[0].key
    for hashed in (
        [Subpacket(2, (NOW + 86400).to_bytes(4, "big"))],  # a binding not yet valid
        [when, Subpacket(3, (60).to_bytes(4, "big"))],  # expired
        [when, Subpacket(9, (3600).to_bytes(4, "big"))],  # the subkey expired
        [when, Subpacket(9, (86400 * 1000).to_bytes(4, "big"))],  # the subkey valid
    ):
        binding = Signature.create(g.primary, priv, 0x18, binding_data(g.primary, sub), hashed)
        out.append(head + sub.serialize() + binding.serialize())
    primary = Subpacket(2, (t + 6).to_bytes(4, "big")), Subpacket(25, b"\x01")
    dup = uid(b"<dup@example.org>", when) + uid(b"D <dup@example.org>", *primary)
    out.append(g.primary.serialize() + dup)
    return out


@pytest.mark.parametrize("now", [NOW, BASE_TIME - 86400 * 200])
def test_fast_selection_equals_plain(impl: str, now: int) -> None:
    """``select_fast`` (one kernel call) decides as ``select_plain`` on every certificate the kernel
    takes, signatures damaged or not, and the kernel takes the common ones."""
    from engine.wkd.lean_select import select_fast

    ring = sample_keyring(40, 7)
    blobs = [b for b in split_stream(io.BufferedReader(io.BytesIO(ring)), "s") if isinstance(b, CertBlob)]  # type: ignore[arg-type]
    datas = [b.data for b in blobs] + _edge_keys()[:-1] + _issuer_keys()
    rng = random.Random(now)
    for data in datas[:12]:  # a flipped bit in a signature, a User ID or a key
        for _ in range(6):
            damaged = bytearray(data)
            damaged[rng.randrange(40, len(data))] ^= 1 << rng.randrange(8)
            datas.append(bytes(damaged))
    taken = declined = 0
    reasons: set[str] = set()
    for data in datas:
        for domains in (frozenset(["example.org"]), None):
            got = select_fast(data, domains, now)
            if got is None:
                declined += 1
                continue
            chosen, fpr, created, left, _, _ = got
            plain_left: list[tuple[str, str]] = []
            cert = LeanCert(data)
            assert select_plain(cert, domains, now, plain_left) == chosen and left == plain_left
            assert (fpr, created) == (cert.primary.fingerprint_hex, cert.created)
            taken += 1
            reasons.update(r for r, _ in left)
    assert taken >= 2 * (len(blobs) + 6) and declined >= 8
    if now == NOW:
        assert {"no valid self-signature", "self-signature expired or not yet valid"} <= reasons
        assert {"other domain", "no mail address in user id"} <= reasons
        assert any(r.startswith("refused") for r in reasons)


def test_lean_refuses_what_it_does_not_know() -> None:
    v6 = export(generate("V6 <v6@example.org>", version=6).public(), armor=False)
    for data in (v6, export(generate("S <s@example.org>"), secret=True, armor=False), b"\x99\x00"):
        with pytest.raises(Unusual):
            LeanCert(data)


def test_self_signature_before_key_creation_does_not_validate_user_id() -> None:
    cert = generate("Main <main@example.org>")
    old = _uid(cert, b"Back <back@example.org>", cert.primary.created - 3600)
    fine = _uid(cert, b"Now <now@example.org>", cert.primary.created)
    back = read_cert(cert.public().serialize() + old + fine)
    assert [u.valid_at() for u in back.user_ids] == [True, False, True]
    assert not back.user_ids[1].self_signatures


def test_minimal_indexes_user_ids_once() -> None:
    cert = generate("Main <main@example.org>")
    t = cert.primary.created
    n = 1000
    extra = b"".join(_uid(cert, f"U{i} <u{i}@Example.org>".encode(), t) for i in range(n))
    many = read_cert(cert.public().serialize() + extra)
    start = time.perf_counter()
    outs = [many.minimal(f"u{i}@example.org") for i in range(n)]
    elapsed = time.perf_counter() - start
    print(f"minimal() for {n} User IDs: {elapsed:.2f} s")  # was quadratic: minutes at 10,000
    assert [[u.text for u in read_cert(outs[i]).user_ids] for i in (0, n - 1)] == [
        ["U0 <u0@Example.org>"],
        [f"U{n - 1} <u{n - 1}@Example.org>"],
    ]
    assert many.minimal(b"U7 <u7@Example.org>") == outs[7]


def test_armor_reader_multiple_blocks_in_bounded_chunks() -> None:
    rng = random.Random(3)
    blobs = [rng.randbytes(n) for n in (5000, 1, 70_000)]
    text = armor(blobs[0], "PUBLIC KEY BLOCK") + b"text between\n" + armor(blobs[1], "PUBLIC KEY BLOCK")
    text += armor(blobs[2], "MESSAGE") + b"trailing text\n"
    for chunk in (7, 100, 1 << 20):
        reader = ArmorReader(io.BytesIO(text), chunk_size=chunk, multiple=True)
        assert reader.read() == b"".join(blobs) and reader.blocks == 3
        assert ArmorReader(io.BytesIO(text), chunk_size=chunk).read() == blobs[0]


def test_armored_keyring_source_streams_every_block(tmp_path: Path) -> None:
    keys = [generate(f"K{i} <k{i}@example.org>") for i in range(3)]
    literal = armor(write_packet(11, b"b\x00\x00\x00\x00\x00hi"), "MESSAGE")  # not a key: skipped
    text = b"\n".join(export(k.public()) for k in keys[:2]) + literal + export(keys[2].public())
    items = list(split_stream(io.BufferedReader(io.BytesIO(text)), "k.asc"))  # type: ignore[arg-type]
    assert [read_certs(i.data)[0].fingerprint for i in items if isinstance(i, CertBlob)] == [
        k.fingerprint for k in keys
    ]
    assert not any(isinstance(i, SourceProblem) for i in items)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


def test_packed_batch_writes_what_select_one_selects(tmp_path: Path) -> None:
    """A worker batch (:func:`select_packed`): its rows in input order equal :func:`select_one`'s records,
    the first key of an address wins the file and a later one comes back with its bytes, a key the lean
    path does not handle (v6) goes the reference way, and no folder descriptor stays open."""
    ring = sample_keyring(40, 5)
    blobs = [b for b in split_stream(io.BufferedReader(io.BytesIO(ring)), "s") if isinstance(b, CertBlob)]  # type: ignore[arg-type]
    blobs += [CertBlob("edge", i, data) for i, data in enumerate(_edge_keys())]
    blobs.append(CertBlob("again", 0, blobs[0].data))  # the same key twice: its file is taken
    root = tmp_path / "stage"
    root.mkdir()
    opts = BuildOptions(frozenset(["example.org"]), now=NOW, root=str(root))
    before = _open_fds()
    packed = select_packed(opts, blobs)
    assert _open_fds() == before
    assert len(packed) == len(blobs) and all(p is None for p in packed[1:])
    out = packed[0]
    assert isinstance(out, Packed)
    want = [
        r for b in blobs for r in select_one(BuildOptions(frozenset(["example.org"]), now=NOW), b).records
    ]
    assert len(out.rows) == len(want) > len(blobs) and out.domains == {"example.org"}
    assert out.unwritten
    seen: set[str] = set()
    for i, (row, rec) in enumerate(zip(out.rows, want, strict=True)):
        assert row[:2] == (rec.domain, rec.hash) and row[4] is None
        assert json.loads(row[2]) == {  # the manifest entry of a file of this key alone
            "address": rec.address, "domain": rec.domain, "local": rec.local, "hash": rec.hash,
            "fingerprints": [rec.fingerprint], "created": [rec.created], "status": [rec.status],
            "sha256": hashlib.sha256(rec.data).hexdigest(), "paths": {"advanced": f"{rec.domain}/hu/{rec.hash}"},
        }  # fmt: skip
        path = root / rec.domain / "hu" / rec.hash
        if rec.hash in seen:  # a later key of an address: its bytes go back to the parent
            assert i in out.unwritten and row[3] == rec.data
        else:
            assert i not in out.unwritten and row[3] is None and path.read_bytes() == rec.data
        seen.add(rec.hash)


@pytest.mark.parametrize(
    ("created", "lifetime", "at", "expected"),
    [(100, 10, 99, False), (100, 10, 100, True), (100, 10, 109, True), (100, 10, 110, False),
     (100, 0, 10**9, True), (100, None, 10**9, True), (100, None, 99, False)],
)  # fmt: skip
def test_live_ends_where_signature_expired_at_begins(
    created: int, lifetime: int | None, at: int, expected: bool
) -> None:
    """``lean.live`` (signatures, subkey expiry) uses the reference's bounds: valid from ``created``,
    expired from ``created + lifetime`` on (``Signature.expired_at``); no lifetime: for ever."""
    from engine.wkd.lean import live

    assert live(created, lifetime, at) is expected
