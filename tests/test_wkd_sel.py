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


def _plain(mod, data: bytes):
    """``plain_cert`` with the key compared by value (an RsaKey by its numbers)."""
    got = mod.plain_cert(data, _KNOWN_MASK)
    if got is None or isinstance(got[2], bytes):
        return got
    return (*got[:2], ("rsa", got[2].n, got[2].e, got[2].size), *got[3:])


@pytest.fixture(scope="module")
def mixed() -> list[bytes]:
    return _certs(sample_keyring(12, 17, rsa_pool(1, 1024), rsa_every=3))


def test_plain_cert_twins_agree(mixed: list[bytes]) -> None:
    """Both kernels return the same for real certificates (RSA and Ed25519) and damaged ones."""
    rng = random.Random(23)
    assert all(KERNELS["pure"].plain_cert(d, _KNOWN_MASK) is not None for d in mixed)  # the common shape
    declined = 0
    for i in range(1500):
        data = bytearray(rng.choice(mixed))
        if i:
            for _ in range(rng.randrange(1, 3)):
                op = rng.randrange(3)
                if op == 0:
                    data[rng.randrange(len(data))] = rng.randrange(256)
                elif op == 1:
                    del data[rng.randrange(len(data) + 1) :]
                else:
                    data[rng.randrange(len(data) + 1) : 0] = bytes(rng.randrange(256) for _ in range(3))
        got = {k: _plain(m, bytes(data)) for k, m in KERNELS.items()}
        assert len({repr(g) for g in got.values()}) == 1, got
        declined += got["pure"] is None
    assert 100 < declined < 1400


def test_plain_cert_checks_are_what_lean_verify_decides(impl: str, mixed: list[bytes]) -> None:
    """A check is present exactly when ``LeanCert.verify`` reaches the public-key operation, and the key
    operation on it answers as ``LeanCert.verify`` does, for good and damaged signatures."""
    from engine.wkd.lean import LeanCert, Sig, Unusual, _sodium_ok, certification_suffix

    kernel = _native.kernel("wkdsel")
    rng = random.Random(3)
    seen = {True: 0, False: 0}
    for data in mixed:
        uid, raw, _ = LeanCert(data).uids[0]
        for n in range(12):
            sig = bytearray(raw[0])
            if n:
                sig[rng.randrange(len(sig))] ^= 1 << rng.randrange(8)
            packets = parse_packets(data)
            at = next(i for i, (t, _) in enumerate(packets) if t == 13) + 1
            packets[at] = (2, bytes(sig))
            damaged = b"".join(bytes((0xC0 | t,)) + _len(len(b)) + b for t, b in packets)
            got = kernel.plain_cert(damaged, _KNOWN_MASK)
            if got is None:
                continue
            check = got[4][0][2]
            cert = LeanCert(damaged)
            try:
                want = cert.verify(Sig(bytes(sig)), certification_suffix(uid))
            except Unusual:  # a hash algorithm it does not know: the kernel declines those
                continue
            verify = _sodium_ok if isinstance(got[2], bytes) else kernel.rsa_verify
            fields = Sig(bytes(sig))
            if not 0x10 <= fields.type <= 0x13 or fields.created < cert.created:
                assert check is None
                continue
            assert (check is not None and verify(check, got[2])) == want
            seen[want] += 1
    assert seen[True] >= len(mixed) and seen[False] > 20


def _mpi(value: bytes) -> bytes:
    """An MPI of ``value``; leading zero octets are kept (counted in its bit count)."""
    bits = 8 * len(value) if value[:1] == b"\x00" else int.from_bytes(value, "big").bit_length()
    return bits.to_bytes(2, "big") + value


def test_plain_cert_declines_rsa_numbers_cryptography_refuses(mixed: list[bytes]) -> None:
    """An RSA primary key goes the common way exactly when ``RSAPublicNumbers`` takes its numbers; a
    signature value followed by stray octets is refused as ``LeanCert.verify`` refuses it."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = next(d for d in mixed if parse_packets(d)[0][1][5] == 1)
    packets = parse_packets(data)
    body = packets[0][1]
    nbits = int.from_bytes(body[6:8], "big")
    n = body[8 : 8 + (nbits + 7) // 8]
    odd_below = (int.from_bytes(n, "big") - 2).to_bytes(len(n), "big")
    for e, n2 in ((b"\x01\x00\x01", n), (n, n), (odd_below, n), (b"\x02", n), (b"\x01", n), (b"\x03", b"\x02"),
                  (b"\x00\x01\x00\x01", b"\x00" + n), (b"\x03", b"\x05"), (b"\x01\x00\x02", n)):  # fmt: skip
        packets[0] = (6, body[:6] + _mpi(n2) + _mpi(e))
        cert = b"".join(bytes((0xC0 | t,)) + _len(len(b)) + b for t, b in packets)
        try:
            rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n2, "big")).public_key()
            usable = True
        except ValueError:
            usable = False
        for mod in KERNELS.values():
            assert (mod.plain_cert(cert, _KNOWN_MASK) is not None) == usable, (e.hex(), n2.hex())
        assert len({repr(_plain(mod, cert)) for mod in KERNELS.values()}) == 1
    at = next(i for i, (t, _) in enumerate(packets) if t == 13) + 1
    packets = parse_packets(data)
    packets[at] = (2, packets[at][1] + b"\x00")  # the material: an MPI and one octet more
    cert = b"".join(bytes((0xC0 | t,)) + _len(len(b)) + b for t, b in packets)
    for mod in KERNELS.values():
        assert mod.plain_cert(data, _KNOWN_MASK)[4][0][2] is not None
        assert mod.plain_cert(cert, _KNOWN_MASK)[4][0][2] is None


def _len(n: int) -> bytes:
    if n < 192:
        return bytes((n,))
    if n < 8384:
        return bytes((((n - 192) >> 8) + 192, (n - 192) & 0xFF))
    return b"\xff" + n.to_bytes(4, "big")


_UID_PARTS = [
    "a", "Z", "0", ".", "-", "_", "+", "@", "<", ">", " ", "\t", "\n", "\x0b", "\x1c", "\x7f", "\x00", "é",
    "ö", "\x85", "\xa0", "x" * 64, "example.org", "Ü", "'", "/", "\\", "..", "(", "\u2028", "a.b", "-a",
    "a-", "\ud800", "\x9f",
]  # fmt: skip
_LOCAL_PARTS = ["a", "Z", ".", "+", "é", "Ü", "\x85", "\x9f", "\xa0", "\x7f", "\x01", "x" * 100, "\ud800"]
_DOMAIN_PARTS = ["a", "Z", "0", ".", "-", "_", "example.org", "a.b", "-a", "a-", "x" * 60, "é", "/", "+"]


def test_plain_address_is_what_the_full_rules_give(mixed: list[bytes]) -> None:
    """Where the kernel reads a User ID's address itself, it reads what ``_address`` (the User ID regexes
    and ``normalize_address``) reads; and it does read the usual ones (ASCII or UTF-8 local parts)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from engine.wkd.lean_select import _address

    data = mixed[0]
    packets = parse_packets(data)
    at = next(i for i, (t, _) in enumerate(packets) if t == 13)
    taken = {k: 0 for k in KERNELS}

    def plain_address(mod, uid: bytes):
        packets[at] = (13, uid)
        cert = b"".join(bytes((0xC0 | t,)) + _len(len(b)) + b for t, b in packets)
        return mod.plain_cert(cert, _KNOWN_MASK)[4][0][0]

    def check(uid: bytes) -> None:
        want = _address(uid, None, [])
        answers = set()
        for name, mod in KERNELS.items():
            got = plain_address(mod, uid)
            assert got is None or got == want, (name, uid)
            taken[name] += got is not None
            answers.add(got)
        assert len(answers) == 1, uid

    for uid in (b"A <a@example.org>", "Jörg <jörg.1@Example.ORG>".encode(), b" x@y.z \n", b"<a@b@c.d>"):
        check(uid)
    assert taken == {k: 3 for k in KERNELS}
    for n in (255, 256, 257):  # the limits: local part, label, domain
        check(b"<" + b"x" * n + b"@example.org>")
        check(b"<a@" + b"x" * (n - 193) + b".org>")
        check(b"a@" + b"x." * ((n - 3) // 2) + b"x" * (1 + (n - 3) % 2) + b"\n")  # 253 to 255 octets
    assert taken == {k: 3 + 5 for k in KERNELS}

    def text(size: int) -> st.SearchStrategy[str]:
        return st.lists(st.sampled_from(_UID_PARTS), max_size=size).map("".join)

    space = st.sampled_from(["", " ", "\n", "\t", "\r", "\x0b", "\x0c", "\x1c", " \n"])
    local = st.lists(st.sampled_from(_LOCAL_PARTS), min_size=1, max_size=4).map("".join)
    domain = st.lists(st.sampled_from(_DOMAIN_PARTS), min_size=1, max_size=5).map("".join)
    bare = st.tuples(space, local, domain, space).map(lambda p: f"{p[0]}{p[1]}@{p[2]}{p[3]}")
    angle = st.tuples(text(3), local, domain, space).map(lambda p: f"{p[0]}<{p[1]}@{p[2]}>{p[3]}")
    texts = st.one_of(bare, angle, text(12)).map(lambda t: t.encode("utf-8", "surrogatepass"))
    raw = st.one_of(texts, st.binary(max_size=30), st.tuples(texts, st.binary(max_size=4)).map(b"".join))
    given(raw)(settings(max_examples=3000, deadline=None)(check))()
