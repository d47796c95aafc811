"""SHA-1 / SHA-256 of many buffers (``sha1_many``, ``sha256_many``: SHA-NI lanes, ``ext/csrc/shamb.c``) and
the SEIPD v1 batch around them (``cfb_encrypt_mdc_many``: MDCs on those lanes, eight AES-CFB lanes, a long
message hashed alongside its own encryption), against hashlib and the one-message construction."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native
from engine.mail import job
from engine.openpgp.symmetric import _CFB

HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}
MILLION_A = b"a" * 1_000_000
# FIPS 180-2 appendix A/B examples (and the NIST example values): "", "abc", the 448-bit message, a million "a"
VECTORS: dict[str, list[tuple[bytes, str]]] = {
    "sha1": [
        (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        (MILLION_A, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
    ],
    "sha256": [
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (MILLION_A, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ],
}  # fmt: skip


def _many(kernel: ModuleType, name: str) -> Callable[[list[bytes]], list[bytes]]:
    return kernel.sha1_many if name == "sha1" else kernel.sha256_many  # type: ignore[no-any-return]


def _native_kernel() -> ModuleType:
    impls = _native.implementations("pgpcrypto")
    if "native" not in impls:
        pytest.skip("native pgpcrypto kernel not built")
    return impls["native"]


def _lane_counts() -> list[int]:
    """Every SHA-NI lane count the native kernel offers, and -1 (libcrypto one by one)."""
    impls = _native.implementations("pgpcrypto")
    top = getattr(impls.get("native"), "SHA_MAX_LANES", 4)
    return [-1, 0, *range(1, top + 1)]


@pytest.mark.parametrize("name", ["sha1", "sha256"])
def test_fips_vectors(impl: str, name: str) -> None:
    many = _many(_native.kernel("pgpcrypto"), name)
    data = [message for message, _ in VECTORS[name]]
    assert [d.hex() for d in many(data)] == [digest for _, digest in VECTORS[name]]
    assert [d.hex() for d in many(data[::-1])] == [digest for _, digest in VECTORS[name]][::-1]


@pytest.mark.parametrize("lanes", _lane_counts())
@pytest.mark.parametrize("name", ["sha1", "sha256"])
def test_every_lane_count(name: str, lanes: int) -> None:
    """The vectors, every length 0..300 (every padding case: tail 0..63, one or two padding blocks), lengths
    around block boundaries further out, and batches of one length (lanes finishing together), per lane count."""
    kernel = _native_kernel()
    sha256 = name == "sha256"
    data = [message for message, _ in VECTORS[name]]
    assert [d.hex() for d in kernel._sha_many_lanes(sha256, data, lanes)] == [d for _, d in VECTORS[name]]
    rng = random.Random(lanes)
    blob = rng.randbytes(70_000)
    lengths = [*range(301), *(64 * k + d for k in (15, 16, 17, 1000) for d in range(-9, 10))]
    rng.shuffle(lengths)
    batch = [blob[i : i + n] for i, n in enumerate(lengths)]
    assert kernel._sha_many_lanes(sha256, batch, lanes) == [HASHES[name](b) for b in batch]
    for n in (0, 55, 56, 64, 119, 128, 4096):
        same = [blob[i : i + n] for i in range(9)]
        assert kernel._sha_many_lanes(sha256, same, lanes) == [HASHES[name](b) for b in same]
    assert kernel._sha_many_lanes(sha256, [], lanes) == []


def test_lane_count_out_of_range() -> None:
    kernel = _native_kernel()
    for lanes in (-2, kernel.SHA_MAX_LANES + 1):
        with pytest.raises(ValueError):
            kernel._sha_many_lanes(True, [b"abc"], lanes)


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.binary(max_size=3000), max_size=12), seed=st.integers(0, 2**32))
def test_many_equals_hashlib(data: list[bytes], seed: int) -> None:
    """Random batches, one or two long buffers among them (lanes refill at different times), on both
    implementations; bytes, bytearray and memoryview alike."""
    rng = random.Random(seed)
    data = data + [rng.randbytes(rng.randrange(3000, 200_000)) for _ in range(seed % 3)]
    rng.shuffle(data)
    views: list[object] = [
        bytearray(d) if i % 3 == 1 else memoryview(d) if i % 3 == 2 else d for i, d in enumerate(data)
    ]
    for kernel in _native.implementations("pgpcrypto").values():
        for name in HASHES:
            assert _many(kernel, name)(views) == [HASHES[name](d) for d in data]


def test_job_digests_match_hashlib(impl: str) -> None:
    """The input digests of a batch (report and MIME boundary) are the hex SHA-256 of each message."""
    rng = random.Random(7)
    raws = [rng.randbytes(n) for n in (0, 1, 63, 64, 65, 5000, 300_000, 12)]
    assert job._sha_many(raws) == [hashlib.sha256(r).hexdigest() for r in raws]
    assert job._sha_many([]) == []


def test_features_say_whether_hashing_is_multi_buffer(impl: str) -> None:
    """Native: SHA-NI lanes exactly when the CPU has SHA-NI (as the WKD kernel finds); pure: never."""
    multi = _native.kernel("pgpcrypto").features()["multi_hash"]
    wkd = _native.implementations("wkd").get("native")
    if impl == "pure":
        assert multi is False
    elif wkd is not None:
        assert multi is bool(wkd.features()["sha_ni"])


def _reference_seipd_v1(key: bytes, prefix: bytes, data: bytes) -> bytes:
    """RFC 9580 section 5.13.1 from the primitives: CFB (zero IV) over prefix || data || MDC."""
    clear = prefix + prefix[-2:] + data + b"\xd3\x14"
    clear += hashlib.sha1(clear).digest()
    ctx = Cipher(algorithms.AES(key), _CFB(bytes(16))).encryptor()
    return b"\x01" + ctx.update(clear) + ctx.finalize()


# Long messages: the MDC range is 18 + size + 2 octets, the encrypted body 18 + size + 22; the threshold of
# the one-lane path is a body of 64 KiB. Around it, and around SHA-1 (64) and AES (16) block boundaries.
LONG_SIZES = [
    65_536 - 41,
    65_536 - 40,
    65_536 - 20,
    *(65_536 + d for d in (24, 25, 26, 44, 45, 63, 64, 65, 99)),
    200_001,
]


def _check_batch(
    kernel: ModuleType, sizes: list[int], seed: int, key_sizes: tuple[int, ...] = (16, 24, 32)
) -> None:
    rng = random.Random(seed)
    items = []
    for i, size in enumerate(sizes):
        key = rng.randbytes(key_sizes[(i + seed) % len(key_sizes)])
        data = rng.randbytes(size)
        items.append((key, rng.randbytes(16), data[3:], data[:3], rng.randbytes(i % 4)))
    out = kernel.cfb_encrypt_mdc_many(items)
    assert len(out) == len(items)
    for (key, prefix, data, head, lead), body in zip(items, out, strict=True):
        assert body == lead + _reference_seipd_v1(key, prefix, head + data)


@pytest.mark.parametrize("extra", [0, 1, 2, 7, 9, 20])
def test_mdc_many_with_one_long_message(impl: str, extra: int) -> None:
    """A message long enough to dominate its batch (hashed block by block ahead of its own encryption in
    the native kernel) at lengths around the 64 KiB threshold and around SHA-1 block and AES block
    boundaries of its MDC range, with ``extra`` short ones beside it; each is the one-message construction."""
    kernel = _native.kernel("pgpcrypto")
    for size in LONG_SIZES:
        short = [random.Random(size).randrange(0, 3000) for _ in range(extra)]
        _check_batch(kernel, [size, *short], size + extra)


def test_mdc_many_lane_refills(impl: str) -> None:
    """Batches of 1 to 20 messages of one key size and of mixed ones (every number of live AES lanes),
    lengths from empty to a few blocks and a few long ones that do not dominate, so lanes finish, refill
    and idle at different times."""
    kernel = _native.kernel("pgpcrypto")
    rng = random.Random(2026)
    for key_sizes in ((16,), (24,), (32,), (16, 24, 32)):
        for n in range(1, 21):
            sizes = [rng.choice([0, 1, 15, 16, 17, 47, 48, 49, rng.randrange(0, 20_000)]) for _ in range(n)]
            _check_batch(kernel, sizes, n, key_sizes)
    _check_batch(kernel, [70_000, 70_000, 69_999, *(rng.randrange(0, 30_000) for _ in range(12))], 99)


def test_native_mdc_many_equals_pure_with_long_messages() -> None:
    impls = _native.implementations("pgpcrypto")
    if "native" not in impls:
        pytest.skip("native pgpcrypto kernel not built")
    rng = random.Random(11)
    sizes = (300_000, 5, 70_000, 1000, 0)
    items = [(os.urandom(32), os.urandom(16), rng.randbytes(n), b"", b"") for n in sizes]
    assert impls["native"].cfb_encrypt_mdc_many(items) == impls["pure"].cfb_encrypt_mdc_many(items)
