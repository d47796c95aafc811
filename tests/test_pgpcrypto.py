"""The ``pgpcrypto`` kernel (AES key wrap, AES-CFB with the SEIPD v1 MDC) on both implementations:
RFC 3394 vectors, the SEIPD v1 construction rebuilt from `cryptography` + hashlib, native == pure."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native
from engine.openpgp import keygen, message
from engine.openpgp.provider import InProcessKeyProvider
from engine.openpgp.streaming import decrypt_stream, encrypt_stream
from engine.openpgp.symmetric import _CFB

RFC3394 = [  # kek, key data, wrapped: RFC 3394 sections 4.1 to 4.6
    ("000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
    ("000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF", "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"),
    ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF", "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
    ("000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607", "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"),
    ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF0001020304050607", "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"),
    ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F", "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"),
]  # fmt: skip


def _k(impl: str) -> ModuleType:
    return _native.kernel("pgpcrypto")


def _reference_seipd_v1(key: bytes, prefix: bytes, data: bytes) -> bytes:
    """RFC 9580 section 5.13.1 built from the primitives: CFB(zero IV) over prefix || data || MDC."""
    clear = prefix + prefix[-2:] + data + b"\xd3\x14"
    clear += hashlib.sha1(clear).digest()
    ctx = Cipher(algorithms.AES(key), _CFB(bytes(16))).encryptor()
    return b"\x01" + ctx.update(clear) + ctx.finalize()


@pytest.mark.parametrize(("kek", "key", "wrapped"), RFC3394)
def test_rfc3394_vectors(impl: str, kek: str, key: str, wrapped: str) -> None:
    k = _k(impl)
    assert k.aes_key_wrap(bytes.fromhex(kek), bytes.fromhex(key)).hex().upper() == wrapped
    assert k.aes_key_unwrap(bytes.fromhex(kek), bytes.fromhex(wrapped)) == bytes.fromhex(key)


def test_key_wrap_errors(impl: str) -> None:
    k = _k(impl)
    kek, data = bytes(16), bytes(24)
    wrapped = bytearray(k.aes_key_wrap(kek, data))
    wrapped[5] ^= 1
    for bad in (lambda: k.aes_key_unwrap(kek, bytes(wrapped)), lambda: k.aes_key_unwrap(kek, bytes(16))):
        with pytest.raises(ValueError):
            bad()
    for bad in (lambda: k.aes_key_wrap(bytes(15), data), lambda: k.aes_key_wrap(kek, bytes(12))):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("key_size", [16, 24, 32])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 8192, 70_000])
def test_cfb_mdc_matches_the_construction(impl: str, key_size: int, size: int) -> None:
    k = _k(impl)
    key, prefix, data = os.urandom(key_size), os.urandom(16), os.urandom(size)
    body = _reference_seipd_v1(key, prefix, data)
    assert k.cfb_encrypt_mdc(key, prefix, data) == body
    assert k.cfb_encrypt_mdc(key, prefix, data[3:], data[:3], b"LEAD") == b"LEAD" + body
    enc = k.MdcEncryptor(key, prefix)
    buf = bytearray(data)
    pieces = [enc.header(), enc.update(data[: size // 3])]
    enc.update_into(memoryview(buf)[size // 3 :], memoryview(buf)[size // 3 :])  # in place
    assert b"".join([*pieces, bytes(buf[size // 3 :]), enc.finalize()]) == body
    assert k.cfb_decrypt_mdc(key, memoryview(body)[1:]) == data


def test_cfb_mdc_many_matches_the_construction(impl: str) -> None:
    """Many messages at once (more than the kernel's eight lanes, so lanes finish and refill at different
    times; mixed key sizes; empty, sub-block and odd lengths): each is the one-message construction."""
    k = _k(impl)
    rng = __import__("random").Random(9580)
    sizes = [0, 1, 15, 16, 17, 31, 32, 33, 4096, 8191, 70_000, *(rng.randrange(0, 20_000) for _ in range(20))]
    items = []
    for i, size in enumerate(sizes):
        key, prefix, data = os.urandom((16, 24, 32)[i % 3]), os.urandom(16), os.urandom(size)
        items.append((key, prefix, data[2:], data[:2], os.urandom(i % 5)))
    out = k.cfb_encrypt_mdc_many(items)
    assert len(out) == len(items)
    for (key, prefix, data, head, lead), body in zip(items, out, strict=True):
        assert body == lead + _reference_seipd_v1(key, prefix, head + data)
    assert k.cfb_encrypt_mdc_many([]) == []
    with pytest.raises(ValueError):
        k.cfb_encrypt_mdc_many([(bytes(32), bytes(16), b"x", b"", b""), (bytes(20), bytes(16), b"x", b"", b"")])


def test_cfb_mdc_rejects_tampering(impl: str) -> None:
    k = _k(impl)
    key, prefix = os.urandom(32), os.urandom(16)
    body = k.cfb_encrypt_mdc(key, prefix, b"x" * 100)[1:]
    for pos in (0, 17, 18, 60, len(body) - 22, len(body) - 1):
        bad = bytearray(body)
        bad[pos] ^= 0x40
        with pytest.raises(ValueError):
            k.cfb_decrypt_mdc(key, bytes(bad))
    for bad_args in ((key, body[:39]), (os.urandom(32), body), (bytes(20), body)):
        with pytest.raises(ValueError):
            k.cfb_decrypt_mdc(*bad_args)
    with pytest.raises(ValueError):
        k.cfb_encrypt_mdc(key, bytes(8), b"data")  # the prefix is one AES block


def test_aes_cfb_stream(impl: str) -> None:
    k = _k(impl)
    key, iv, data = os.urandom(16), os.urandom(16), os.urandom(1000)
    ref = Cipher(algorithms.AES(key), _CFB(iv)).encryptor().update(data)
    enc = k.AesCfb(key, iv)
    assert enc.update(data[:7]) + enc.update(data[7:]) + enc.finalize() == ref
    assert k.AesCfb(key, iv, True).update(ref) == data


needs_native = pytest.mark.skipif(
    "native" not in _native.implementations("pgpcrypto"), reason="native pgpcrypto kernel not built"
)


@needs_native
@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    prefix=st.binary(min_size=16, max_size=16),
    data=st.binary(max_size=3000),
    head=st.binary(max_size=40),
    wrap_blocks=st.integers(2, 40),
)
def test_native_equals_pure(key: bytes, prefix: bytes, data: bytes, head: bytes, wrap_blocks: int) -> None:
    impls = _native.implementations("pgpcrypto")
    nat, pure = impls["native"], impls["pure"]
    assert nat.cfb_encrypt_mdc(key, prefix, data, head) == pure.cfb_encrypt_mdc(key, prefix, data, head)
    body = nat.cfb_encrypt_mdc(key, prefix, data)[1:]
    assert nat.cfb_decrypt_mdc(key, body) == pure.cfb_decrypt_mdc(key, body) == data
    wrap_in = (data + bytes(8 * wrap_blocks))[: 8 * wrap_blocks]
    wrapped = nat.aes_key_wrap(key, wrap_in)
    assert wrapped == pure.aes_key_wrap(key, wrap_in)
    assert nat.aes_key_unwrap(key, wrapped) == pure.aes_key_unwrap(key, wrapped) == wrap_in


@needs_native
@settings(max_examples=40, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
            st.binary(min_size=16, max_size=16),
            st.binary(max_size=2000),
            st.binary(max_size=8),
            st.binary(max_size=8),
        ),
        max_size=11,
    )
)
def test_native_many_equals_pure(messages: list[tuple[bytes, bytes, bytes, bytes, bytes]]) -> None:
    impls = _native.implementations("pgpcrypto")
    assert impls["native"].cfb_encrypt_mdc_many(messages) == impls["pure"].cfb_encrypt_mdc_many(messages)


@needs_native
@settings(max_examples=80, deadline=None)
@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    iv=st.none() | st.binary(min_size=16, max_size=16),
    data=st.binary(max_size=40_000),
    cuts=st.lists(st.integers(0, 40_000), max_size=8),
)
def test_cfb_decrypt_in_pieces(key: bytes, iv: bytes | None, data: bytes, cuts: list[int]) -> None:
    """Native streaming CFB decryption (partial blocks carried between calls, more than one 16 KiB
    chunk) equals the pure twin on the same input cut anywhere."""
    impls = _native.implementations("pgpcrypto")
    expected = impls["pure"].AesCfb(key, iv, True).update(data)
    dec = impls["native"].AesCfb(key, iv, True)
    edges = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
    assert b"".join(dec.update(data[a:b]) for a, b in itertools.pairwise(edges)) == expected


@pytest.fixture(scope="module")
def cert():  # type: ignore[no-untyped-def]
    return keygen.generate("Kernel <kernel@example.org>", "ed25519")


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])
def test_sized_stream_encryption(impl: str, cert, tmp_path: Path, size: int) -> None:  # type: ignore[no-untyped-def]
    """A regular file (size known) gets definite lengths and in-place encryption; gpg-style partial
    lengths remain for pipes; both decrypt to the same bytes."""
    data = os.urandom(size)
    src = tmp_path / "plain"
    src.write_bytes(data)
    provider = InProcessKeyProvider([cert])
    outs = []
    for source in (open(src, "rb"), io.BytesIO(data), io.BufferedReader(io.BytesIO(data))):  # noqa: SIM115
        out = io.BytesIO()
        with source:
            encrypt_stream(source, out, [cert.public()])
        outs.append(out.getvalue())
        assert message.decrypt(out.getvalue(), provider).plaintext == data
        plain = io.BytesIO()
        decrypt_stream(io.BytesIO(out.getvalue()), plain, provider)
        assert plain.getvalue() == data
    assert len(outs[0]) == len(outs[1])  # same definite-length layout from a file and from BytesIO
