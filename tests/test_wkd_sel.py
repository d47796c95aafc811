"""The WKD scanning kernel (``engine._wkdsel_c`` / ``engine._wkdsel_py``): both give the same answers,
on real certificates and on damaged ones, and agree with the reference parsers."""

from __future__ import annotations

import io
import random

import pytest

from engine import _native
from engine.errors import PgpBulkError
from engine.openpgp.public_key import PublicKey
from engine.openpgp.reader import BodyReader
from engine.wkd.lean import _KNOWN_MASK, parse_packets
from engine.wkd.sample import rsa_pool, sample_keyring
from engine.wkd.sources import CertBlob, split_stream

KERNELS = _native.implementations("wkdsel")


@pytest.fixture(scope="module")
def ring() -> bytes:
    return sample_keyring(40, 7, rsa_every=0)


def _certs(ring: bytes) -> list[bytes]:
    return [b.data for b in split_stream(io.BufferedReader(io.BytesIO(ring)), "t") if isinstance(b, CertBlob)]


def _call(mod, name, *args):
    try:
        return getattr(mod, name)(*args)
    except ValueError:
        return "ValueError"


def test_twins_agree_on_real_certificates(ring: bytes) -> None:
    for data in _certs(ring):
        results = {k: _call(m, "packets", data) for k, m in KERNELS.items()}
        assert len({repr(r) for r in results.values()}) == 1
        pk = next(iter(results.values()))
        assert pk[0][0] == 6
        for tag, body in pk:
            if tag == 2:
                fields = {k: _call(m, "sig_fields", body, _KNOWN_MASK) for k, m in KERNELS.items()}
                assert len({repr(f) for f in fields.values()}) == 1, fields
                assert fields["pure"] != "ValueError"
            if tag == 14:
                plain = {k: m.key_plain(body) for k, m in KERNELS.items()}
                assert len(set(plain.values())) == 1
                assert plain["pure"]  # the samples are all of the common shapes
                PublicKey.read(BodyReader(body), True)


def test_cert_parse_groups_like_the_packets(ring: bytes) -> None:
    for data in _certs(ring):
        results = {k: _call(m, "cert_parse", data, _KNOWN_MASK) for k, m in KERNELS.items()}
        assert len({repr(r) for r in results.values()}) == 1
        body, other, other_fields, uids, subkeys = results["pure"]
        pk = parse_packets(data)
        assert body == pk[0][1] and not other and not other_fields
        assert [u[0] for u in uids] == [b for t, b in pk if t == 13]
        assert [k[0] for k in subkeys] == [b for t, b in pk if t == 14]
        sigs = [(b, f) for _, bodies, fields in uids + subkeys for b, f in zip(bodies, fields, strict=True)]
        assert [b for b, _ in sigs] == [b for t, b in pk if t == 2]
        assert all(f == KERNELS["pure"].sig_fields(b, _KNOWN_MASK) for b, f in sigs)


def test_cert_parse_shapes() -> None:
    key, uid, sig, sub, attr = b"\xc6\x01\x04", b"\xcd\x01u", b"\xc2\x01\x04", b"\xce\x01\x04", b"\xd1\x01a"
    for mod in KERNELS.values():
        with pytest.raises(ValueError):
            mod.cert_parse(uid + key, _KNOWN_MASK)  # no primary key first
        with pytest.raises(ValueError):
            mod.cert_parse(key + b"\xcc\x01t", _KNOWN_MASK)  # a trust packet
        with pytest.raises(ValueError):
            mod.cert_parse(key, b"short")
        got = mod.cert_parse(key + sig + uid + sig + attr + sig + sub + sig + sig, _KNOWN_MASK)
        assert got == (
            b"\x04",
            [b"\x04"],
            [None],
            [(b"u", [b"\x04"], [None])],
            [(b"\x04", [b"\x04", b"\x04"], [None, None])],
        )


def test_cert_end_cuts_like_the_splitter(ring: bytes) -> None:
    certs = _certs(ring)
    for name, mod in KERNELS.items():
        pos = 0
        for i, data in enumerate(certs):
            end = mod.cert_end(ring, pos, 1 << 16, 8 << 20)
            if i == len(certs) - 1:
                assert end == -1, name  # no next key header inside the buffer
                break
            assert end == pos + len(data), name
            assert ring[pos:end] == data
            pos = end
        assert mod.cert_end(ring, 0, 1 << 16, 100) == -1  # larger than the limit
        assert mod.cert_end(ring, 0, 2, 8 << 20) == -1  # a User ID over the limit


def test_twins_agree_on_damaged_input(ring: bytes) -> None:
    rng = random.Random(5)
    certs = _certs(ring)
    sigs = [b for d in certs for t, b in parse_packets(d) if t == 2]
    subs = [b for d in certs for t, b in parse_packets(d) if t == 14]
    for _ in range(3000):
        kind = rng.randrange(4)
        src = rng.choice((certs, sigs, subs, [ring[:4000]])[kind])
        data = bytearray(rng.choice(src))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1:
                del data[rng.randrange(len(data) + 1) :]
            else:
                data[rng.randrange(len(data) + 1) : 0] = bytes(rng.randrange(256) for _ in range(3))
        blob = bytes(data)
        calls = [("packets", blob), ("sig_fields", blob, _KNOWN_MASK), ("key_plain", blob)]
        calls.append(("cert_parse", blob, _KNOWN_MASK))
        calls.append(("cert_end", blob, rng.randrange(-1, 8), 1 << 16, 8 << 20))
        for call in calls:
            got = {k: repr(_call(m, *call)) for k, m in KERNELS.items()}
            assert len(set(got.values())) == 1, (call, got)
        if KERNELS["pure"].key_plain(blob):
            try:
                PublicKey.read(BodyReader(blob), True)
            except PgpBulkError as exc:
                pytest.fail(f"key_plain accepted what the parser refuses: {exc}")


def test_packets_refuses_indeterminate_and_truncated() -> None:
    for mod in KERNELS.values():
        with pytest.raises(ValueError):
            mod.packets(b"\x9b\x00")  # old format, indeterminate length
        with pytest.raises(ValueError):
            mod.packets(b"\xcd\x05ab")  # truncated body
        with pytest.raises(ValueError):
            mod.packets(b"\xcd\xe1ab")  # partial body length
        assert mod.packets(b"\xcd\x02ab\xb4\x01c") == [(13, b"ab"), (13, b"c")]


def test_lean_primary_matches_the_full_parser(impl: str) -> None:
    from engine.wkd.lean import _Primary

    bodies = [parse_packets(d)[0][1] for d in _certs(sample_keyring(6, 3, rsa_pool(1, 1024), rsa_every=2))]
    assert {b[5] for b in bodies} == {1, 22}
    for body in bodies:
        assert KERNELS["pure"].key_plain(body)
        full = PublicKey.read(BodyReader(body), False)
        lean = _Primary(body)
        assert (lean.algorithm, lean.created, lean.fingerprint) == (
            full.algorithm,
            full.created,
            full.fingerprint,
        )
        assert lean.fingerprint_hex == full.fingerprint_hex
        for name in ("n", "e", "point"):
            if hasattr(full.material, name):
                assert getattr(lean, name) == getattr(full.material, name)


@pytest.mark.parametrize("rsa_every", [0, 1])
def test_lean_verify_accepts_good_and_refuses_damaged_signatures(impl: str, rsa_every: int) -> None:
    from engine.wkd.lean import LeanCert, Sig, certification_suffix

    pool = rsa_pool(1, 1024) if rsa_every else ()
    for data in _certs(sample_keyring(3, 11, pool, rsa_every=rsa_every)):
        cert = LeanCert(data)
        uid, raw, _ = cert.uids[0]
        assert cert.verify(Sig(raw[0]), certification_suffix(uid))
        bad = bytearray(raw[0])
        bad[-1] ^= 0x01  # the signature value; the hashed part and its left 16 bits stay right
        assert not cert.verify(Sig(bytes(bad)), certification_suffix(uid))
        assert not cert.verify(Sig(raw[0]), certification_suffix(uid + b"x"))


def test_lean_ed25519_without_libsodium_goes_through_openssl(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.wkd import lean
    from engine.wkd.lean import LeanCert, Sig, certification_suffix

    calls = []
    monkeypatch.setattr(lean, "_sodium_ok", lambda *a: calls.append(a) or True)  # would accept anything
    monkeypatch.setattr(lean, "_sodium_open", None)
    for data in _certs(sample_keyring(2, 13)):
        cert = LeanCert(data)
        uid, raw, _ = cert.uids[0]
        assert cert.verify(Sig(raw[0]), certification_suffix(uid))
        bad = bytearray(raw[0])
        bad[-1] ^= 0x01
        assert not cert.verify(Sig(bytes(bad)), certification_suffix(uid))
    assert not calls


def _old_ed(m: bytes) -> bytes | None:
    """What the lean path computed from the material before the kernel did (two MPIs, R || S)."""
    from engine.wkd.lean import _mpi

    try:
        r, rest = _mpi(m, 0)
        s, end = _mpi(m, rest)
    except ValueError:
        return None
    if end != len(m) or len(r) > 32 or len(s) > 32:
        return None
    return r.rjust(32, b"\x00") + s.rjust(32, b"\x00")


def test_sig_tail_and_ed25519_value_match_the_formulas(ring: bytes) -> None:
    rng = random.Random(9)
    sigs = [b for d in _certs(ring) for t, b in parse_packets(d) if t == 2]
    materials = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x01\x00\xff\x00\x00",
        b"\x00\x08\x01\x00\x08\x02",
        b"\x01\x08" + bytes(33),
    ]
    for body in sigs:
        fields = KERNELS["pure"].sig_fields(body, _KNOWN_MASK)
        end = fields[3]
        assert fields[14] == body[:end] + b"\x04\xff" + end.to_bytes(4, "big")
        assert fields[15] is not None and fields[15] == _old_ed(fields[13])
        m = bytearray(fields[13])
        for _ in range(20):
            d = bytearray(m)
            d[rng.randrange(len(d))] = rng.choice((0, 1, 2, 0x20, 0x21, 0xFF, rng.randrange(256)))
            materials.append(bytes(d[: rng.randrange(len(d) + 1)]) if rng.random() < 0.3 else bytes(d))
    head = sigs[0][: len(sigs[0]) - len(KERNELS["pure"].sig_fields(sigs[0], _KNOWN_MASK)[13])]
    for m in materials:
        want = _old_ed(m)
        for name, mod in KERNELS.items():
            assert mod.sig_fields(head + m, _KNOWN_MASK)[15] == want, (name, m.hex())
