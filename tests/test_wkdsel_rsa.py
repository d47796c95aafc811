"""The WKD kernel's ``rsa_verify`` accepts exactly the PKCS #1 v1.5 blocks OpenSSL's verification accepts
(``cryptography``'s verify, the twin): signatures made here over crafted encoded blocks, both kernels."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from engine import _native
from engine.wkd.lean import _KNOWN_MASK, parse_packets
from engine.wkd.sample import rsa_pool, sample_keyring
from engine.wkd.sources import CertBlob, split_stream

KERNELS = _native.implementations("wkdsel")

# The DER DigestInfo before each digest (RFC 8017 section 9.2 note 1), by digest length.
_PREFIX = {
    20: bytes.fromhex("3021300906052b0e03021a05000414"),
    28: bytes.fromhex("302d300d06096086480165030402040500041c"),
    32: bytes.fromhex("3031300d060960864801650304020105000420"),
    48: bytes.fromhex("3041300d060960864801650304020205000430"),
    64: bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HASHES = {
    20: hashes.SHA1(),
    28: hashes.SHA224(),
    32: hashes.SHA256(),
    48: hashes.SHA384(),
    64: hashes.SHA512(),
}


def _prime(rng: random.Random, bits: int) -> int:
    """A random prime of ``bits`` bits (Fermat base 2 and 3: a composite would make every signature fail)."""
    while True:
        p = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if pow(2, p - 1, p) == 1 and pow(3, p - 1, p) == 1 and p % 65537 != 1:
            return p


def _key(bits: int, seed: int) -> tuple[int, int]:
    """``(n, d)`` of an RSA key with e = 65537 and an n of exactly ``bits`` bits."""
    rng = random.Random(seed)
    while True:
        p, q = _prime(rng, bits // 2), _prime(rng, bits - bits // 2)
        n = p * q
        if n.bit_length() == bits and p != q:
            return n, pow(65537, -1, (p - 1) * (q - 1))


def _mpi(value: bytes) -> bytes:
    return (int.from_bytes(value, "big").bit_length()).to_bytes(2, "big") + value


def _len(n: int) -> bytes:
    return bytes((n,)) if n < 192 else bytes((0xFF,)) + n.to_bytes(4, "big")


@pytest.fixture(scope="module")
def template() -> bytes:
    """A certificate with an RSA primary key, of the common shape."""
    ring = sample_keyring(1, 5, rsa_pool(1, 1024), rsa_every=1)
    blobs = [
        b.data for b in split_stream(io.BufferedReader(io.BytesIO(ring)), "t") if isinstance(b, CertBlob)
    ]
    return blobs[0]


def _rsa_key(mod, template: bytes, n: int):
    """The kernel's key object for modulus ``n`` (e = 65537), from ``template`` with its numbers replaced."""
    packets = parse_packets(template)
    body = packets[0][1]
    packets[0] = (6, body[:6] + _mpi(n.to_bytes((n.bit_length() + 7) // 8, "big")) + _mpi(b"\x01\x00\x01"))
    cert = b"".join(bytes((0xC0 | t,)) + _len(len(b)) + b for t, b in packets)
    got = mod.plain_cert(cert, _KNOWN_MASK)
    assert got is not None
    return got[2]


def _openssl_says(n: int, signature: bytes, digest: bytes) -> bool:
    public = rsa.RSAPublicNumbers(65537, n).public_key()
    try:
        public.verify(signature, digest, padding.PKCS1v15(), Prehashed(_HASHES[len(digest)]))
    except (InvalidSignature, ValueError):
        return False
    return True


def _encode(size: int, payload: bytes, pad_octet: bytes = b"\xff") -> bytes:
    """00 01, padding, 00, ``payload``: ``size`` octets."""
    return b"\x00\x01" + pad_octet * (size - 3 - len(payload)) + b"\x00" + payload


def _blocks(size: int, digest: bytes) -> list[tuple[str, bytes]]:
    """Encoded blocks of ``size`` octets for ``digest``: the valid one, then damaged ones."""
    payload = _PREFIX[len(digest)] + digest
    valid = _encode(size, payload)
    pad = size - 3 - len(payload)
    other = {20: 32, 28: 32, 32: 20, 48: 64, 64: 48}[len(digest)]
    out = [
        ("valid", valid),
        ("type 2", b"\x00\x02" + valid[2:]),
        ("no leading 00", b"\x01" + valid[1:]),
        ("a padding octet not FF", valid[:5] + b"\xfe" + valid[6:]),
        ("last padding octet 00", valid[: 1 + pad] + b"\x00" + valid[2 + pad :]),
        ("separator not 00", valid[: 2 + pad] + b"\x01" + payload),
        ("digest info of another hash", _encode(size, _PREFIX[other] + digest)),
        ("no NULL parameters", _encode(size, _absent_null(payload))),
        ("one digest octet off", valid[:-1] + bytes((valid[-1] ^ 1,))),
        ("separator early", b"\x00\x01" + b"\xff" * 8 + b"\x00" + b"\xff" * (pad - 8) + payload),
        ("an octet after the digest", _encode(size, payload + b"\x00")),
        ("padding of 01", _encode(size, payload, b"\x01")),
    ]
    assert all(len(block) == size for _, block in out)
    return out


def _absent_null(payload: bytes) -> bytes:
    """The DigestInfo without its algorithm's NULL parameters (the other DER form RFC 8017 mentions)."""
    der = bytearray(payload)
    oid_end = 4 + 2 + der[5]  # SEQUENCE, SEQUENCE, OID tag and length, OID
    del der[oid_end : oid_end + 2]
    der[1] -= 2
    der[3] -= 2
    return bytes(der)


@pytest.mark.parametrize("kind", sorted(KERNELS))
@pytest.mark.parametrize("digest_len", [20, 28, 32, 48, 64])
def test_rsa_verify_accepts_only_the_pkcs1_block(template: bytes, kind: str, digest_len: int) -> None:
    mod = KERNELS[kind]
    n, d = _key(1024, 11)
    key = _rsa_key(mod, template, n)
    digest = hashlib.sha512(b"wkd %d" % digest_len).digest()[:digest_len]
    verdicts = {}
    for what, block in _blocks(128, digest):
        signature = pow(int.from_bytes(block, "big"), d, n).to_bytes(128, "big")
        verdicts[what] = mod.rsa_verify(signature + digest, key)
        assert verdicts[what] == _openssl_says(n, signature, digest), what
    assert verdicts.pop("valid")
    assert not any(verdicts.values()), verdicts
    good = pow(int.from_bytes(_blocks(128, digest)[0][1], "big"), d, n).to_bytes(128, "big")
    assert not mod.rsa_verify(n.to_bytes(128, "big") + digest, key)  # not below the modulus
    assert not mod.rsa_verify(good + digest + b"\x00", key)  # no digest of that length
    assert not mod.rsa_verify(good[1:] + digest, key)  # a short signature names another digest length


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_rsa_verify_needs_eight_padding_octets(template: bytes, kind: str) -> None:
    """A modulus just long enough for SHA-512 with 8 octets of FF verifies; one octet shorter, none does."""
    mod = KERNELS[kind]
    digest = hashlib.sha512(b"short").digest()
    for size, want in ((3 + 8 + 83, True), (3 + 7 + 83, False)):
        n, d = _key(8 * size, size)
        key = _rsa_key(mod, template, n)
        block = b"\x00\x01" + b"\xff" * (size - 86) + b"\x00" + _PREFIX[64] + digest
        signature = pow(int.from_bytes(block, "big"), d, n).to_bytes(size, "big")
        assert mod.rsa_verify(signature + digest, key) is want
        assert _openssl_says(n, signature, digest) is want
