"""String-to-key: count coding, the three hash-based derivations, Argon2, and error cases."""

from __future__ import annotations

import hashlib

import pytest

from engine.errors import InvalidArgument, MalformedPacket, UnsupportedAlgorithm
from engine.openpgp.packet import BodyReader
from engine.openpgp.s2k import S2K, decode_count, encode_count


def test_count_coding() -> None:
    assert decode_count(96) == 65536  # RFC 9580 section 3.7.1.3 example: 0x60
    assert decode_count(0) == 1024 and decode_count(255) == 65011712
    assert all(decode_count(encode_count(decode_count(c))) == decode_count(c) for c in range(256))
    assert decode_count(encode_count(100000)) >= 100000 > decode_count(encode_count(100000) - 1)


def test_simple_and_salted_with_two_hash_contexts() -> None:
    # AES-256 from SHA-1: a second context preloaded with one zero octet (section 3.7.1.1)
    key = S2K(0, 2).derive("pw", 32)
    assert key == hashlib.sha1(b"pw").digest() + hashlib.sha1(b"\x00pw").digest()[:12]
    salt = bytes(range(8))
    assert S2K(1, 8, salt).derive(b"pw", 16) == hashlib.sha256(salt + b"pw").digest()[:16]


def test_iterated_hashes_count_octets() -> None:
    salt = b"saltsalt"
    s2k = S2K(3, 8, salt, coded_count=0)  # 1024 octets of salt||passphrase repeated
    data = (salt + b"passphrase") * 100
    assert s2k.derive("passphrase", 32) == hashlib.sha256(data[:1024]).digest()
    short = S2K(3, 8, salt, coded_count=0).derive("p" * 2000, 16)  # count below one copy: hash it once
    assert short == hashlib.sha256(salt + b"p" * 2000).digest()[:16]


def test_serialize_round_trip() -> None:
    for s2k in (
        S2K(0, 2),
        S2K(1, 8, b"12345678"),
        S2K.iterated(),
        S2K.argon2(m=10),
        S2K(101, 2, gnu_mode=1002),
    ):
        raw = s2k.serialize()
        r = BodyReader(raw)
        assert S2K.read(r) == s2k and r.remaining == 0


def test_argon2_parameters_matter() -> None:
    a = S2K(4, salt=b"s" * 16, t=1, p=1, m=10)
    assert len(a.derive("x", 32)) == 32
    assert a.derive("x", 32) == S2K(4, salt=b"s" * 16, t=1, p=1, m=10).derive(b"x", 32)
    assert a.derive("x", 32) != S2K(4, salt=b"s" * 16, t=2, p=1, m=10).derive("x", 32)
    with pytest.raises(InvalidArgument):
        S2K(4, salt=b"s" * 16, t=1, p=1, m=40).derive("x", 32)


def test_errors() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        S2K.read(BodyReader(b"\x02\x08"))
    with pytest.raises(MalformedPacket, match="GNU"):
        S2K.read(BodyReader(b"\x65\x02XYZ\x01"))
    with pytest.raises(MalformedPacket):
        S2K.read(BodyReader(b"\x03\x08abc"))
    with pytest.raises(UnsupportedAlgorithm):
        S2K(3, 3, b"12345678").derive("x", 16)  # RIPEMD-160
    with pytest.raises(UnsupportedAlgorithm):
        S2K(101, 2, gnu_mode=1001).derive("x", 16)
