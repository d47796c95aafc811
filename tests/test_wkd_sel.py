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
        assert (lean.algorithm, lean.created, lean.fingerprint) == (full.algorithm, full.created, full.fingerprint)
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
        uid, raw = cert.uids[0]
        assert cert.verify(Sig(raw[0]), certification_suffix(uid))
        bad = bytearray(raw[0])
        bad[-1] ^= 0x01  # the signature value; the hashed part and its left 16 bits stay right
        assert not cert.verify(Sig(bytes(bad)), certification_suffix(uid))
        assert not cert.verify(Sig(raw[0]), certification_suffix(uid + b"x"))
