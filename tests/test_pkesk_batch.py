"""Batched legacy-ECDH (Curve25519) PKESKs: one ``pgpcrypto`` kernel call for a batch of session keys,
byte for byte what :func:`pkesk_packet` writes one by one with the same randomness, on both kernels;
``encrypt_many`` through it equals the per-message path and decrypts."""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import keywrap
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native
from engine.errors import UnsupportedAlgorithm
from engine.openpgp import keygen, message, pkesk
from engine.openpgp.constants import HashAlgorithm, SymmetricAlgorithm
from engine.openpgp.ecdh import EcdhParams
from engine.openpgp.packet import iter_packets
from engine.openpgp.pkesk import Recipient, SessionKey, ecdh25519_packets, parse_pkesk, pkesk_packet
from engine.openpgp.provider import InProcessKeyProvider

AES128, AES256 = SymmetricAlgorithm.AES128, SymmetricAlgorithm.AES256


@pytest.fixture(scope="module")
def cert():  # type: ignore[no-untyped-def]
    return keygen.generate("Batch <batch@example.org>")  # Ed25519 + legacy ECDH Curve25519


@pytest.fixture(scope="module")
def recipient(cert) -> Recipient:  # type: ignore[no-untyped-def]
    (r,) = message.resolve_recipients([cert.public()])
    assert pkesk.ecdh25519_batchable(r)
    return r


def _variant(r: Recipient, kdf_hash: HashAlgorithm, kek: SymmetricAlgorithm) -> Recipient:
    """``r`` with other KDF parameters (and fresh cached parts)."""
    params = EcdhParams(r.ecdh.curve, kdf_hash, kek)  # type: ignore[union-attr]
    return dataclasses.replace(r, ecdh=params, _parts={})


def _one_by_one(r: Recipient, keys: list[bytes], cipher: SymmetricAlgorithm | None, secrets: list[bytes],
                version: int, anonymous: bool) -> list[bytes]:  # fmt: skip
    return [
        pkesk_packet(r, SessionKey(cipher, k), version, anonymous, lambda n, s=s: s[:n])  # type: ignore[misc]
        for k, s in zip(keys, secrets, strict=True)
    ]


@pytest.mark.parametrize("kdf_hash", [HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512])
@pytest.mark.parametrize("kek", [AES128, SymmetricAlgorithm.AES192, AES256])
@pytest.mark.parametrize(("version", "anonymous"), [(3, False), (3, True), (6, False), (6, True)])
def test_batch_equals_pkesk_packet(impl: str, recipient: Recipient, kdf_hash: HashAlgorithm,
                                   kek: SymmetricAlgorithm, version: int, anonymous: bool) -> None:  # fmt: skip
    r = _variant(recipient, kdf_hash, kek)
    keys = [os.urandom(n) for n in (16, 24, 32, 32, 13, 61)]  # each frame length mod 8, v3 and v6
    secrets = [os.urandom(32) for _ in keys]
    cipher = AES256 if version == 3 else None
    batch = ecdh25519_packets(r, keys, cipher, secrets, version, anonymous)
    assert batch == _one_by_one(r, keys, cipher, secrets, version, anonymous)
    assert len(set(batch)) == len(keys)


def test_batch_decrypts(impl: str, cert, recipient: Recipient) -> None:  # type: ignore[no-untyped-def]
    keys = [os.urandom(32) for _ in range(5)]
    packets = ecdh25519_packets(recipient, keys, AES256, [os.urandom(32) for _ in keys])
    provider = InProcessKeyProvider([cert])
    for key, packet in zip(keys, packets, strict=True):
        (parsed,) = iter_packets(packet)
        assert provider.decrypt_session_key(parse_pkesk(parsed)) == SessionKey(AES256, key)


def test_batch_refusals(impl: str, recipient: Recipient) -> None:
    k = _native.kernel("pgpcrypto")
    raw, param, head = (
        pkesk._raw_public(recipient),
        pkesk._kdf_param(recipient),
        pkesk._head(recipient, 3, False),
    )
    good = (raw, param, head, 8, 16, 9, [bytes(32)], [os.urandom(32)])
    assert len(k.ecdh25519_pkesks(*good)) == 1
    for at, bad in [
        (0, raw[:31]),  # public key size
        (3, 2),  # KDF hash (SHA-1)
        (4, 20),  # KEK size
        (5, 256),  # cipher octet
        (6, [bytes(32), bytes(32)]),  # one secret per key
        (7, [os.urandom(31)]),  # secret size
        (6, [b""]),  # empty session key
        (0, bytes(32)),  # a low-order point: all-zero shared secret
    ]:
        args = list(good)
        args[at] = bad
        with pytest.raises(ValueError):
            k.ecdh25519_pkesks(*args)
    with pytest.raises(Exception, match="v3 PKESK needs"):
        ecdh25519_packets(recipient, [bytes(32)], None, [os.urandom(32)])
    other = _variant(recipient, HashAlgorithm.SHA1, AES128)  # a KDF hash ecdh.kdf refuses as well
    assert not pkesk.ecdh25519_batchable(other)
    with pytest.raises(UnsupportedAlgorithm):
        ecdh25519_packets(other, [bytes(32)], AES256, [os.urandom(32)])


needs_native = pytest.mark.skipif(
    "native" not in _native.implementations("pgpcrypto"), reason="native pgpcrypto kernel not built"
)


@needs_native
def test_native_without_libsodium_addresses(recipient: Recipient) -> None:
    """Should PyNaCl not hand out its libsodium's function addresses, the native kernel calls its public
    functions instead: same packets, a low-order point still refused."""
    native = _native.implementations("pgpcrypto")["native"]
    keys, secrets = [os.urandom(32) for _ in range(3)], [os.urandom(32) for _ in range(3)]
    args = (
        pkesk._raw_public(recipient),
        pkesk._kdf_param(recipient),
        pkesk._head(recipient, 3, False),
        8,
        16,
        9,
    )
    fast = native.ecdh25519_pkesks(*args, keys, secrets)
    native._x25519_via_bindings(True)
    try:
        assert native.ecdh25519_pkesks(*args, keys, secrets) == fast
        with pytest.raises(ValueError):
            native.ecdh25519_pkesks(bytes(32), *args[1:], keys, secrets)
    finally:
        native._x25519_via_bindings(False)
    assert native.ecdh25519_pkesks(*args, keys, secrets) == fast


@needs_native
@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=6, max_size=64), max_size=6),  # a frame of at least 16 octets
    param=st.binary(max_size=80),
    head=st.binary(max_size=30),
    kdf_hash=st.sampled_from([8, 9, 10]),
    kek_size=st.sampled_from([16, 24, 32]),
    cipher=st.none() | st.integers(0, 255),
    seed=st.integers(0, 2**32),
)
def test_native_equals_pure(keys: list[bytes], param: bytes, head: bytes, kdf_hash: int, kek_size: int,
                            cipher: int | None, seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    recipient = rng.randbytes(31) + b"\x42"
    secrets = [rng.randbytes(32) for _ in keys]
    impls = _native.implementations("pgpcrypto")
    args = (recipient, param, head, kdf_hash, kek_size, cipher, keys, secrets)
    assert impls["native"].ecdh25519_pkesks(*args) == impls["pure"].ecdh25519_pkesks(*args)


def _stream(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


@pytest.fixture
def per_message(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    def switch(on: bool) -> None:
        monkeypatch.setattr(
            message, "ecdh25519_batchable", (lambda r: False) if on else pkesk.ecdh25519_batchable
        )

    yield switch


@pytest.mark.parametrize("cipher", [AES128, AES256])
@pytest.mark.parametrize("copies", [1, 2])
def test_encrypt_many_same_bytes_as_per_message(impl: str, cert, cipher: SymmetricAlgorithm, copies: int,
                                                per_message, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """With the same randomness, the batched PKESKs give the very bytes of the per-message path (draws
    in the same order: session key, ephemeral secrets, prefix); and every message decrypts."""
    plaintexts = [b"", b"x", os.urandom(17), os.urandom(5000)]
    recipients = [cert.public()] * copies
    outs = {}
    for one_by_one in (True, False):
        per_message(one_by_one)
        monkeypatch.setattr(os, "urandom", _stream(7))
        outs[one_by_one] = message.encrypt_many(plaintexts, recipients, cipher=cipher, armor=True)
    monkeypatch.undo()
    assert outs[True] == outs[False]
    provider = InProcessKeyProvider([cert])
    assert [message.decrypt(o, provider).plaintext for o in outs[False]] == plaintexts


@pytest.mark.parametrize("kek_size", [16, 24, 32])
def test_key_wrap_matches_cryptography(impl: str, kek_size: int) -> None:
    """The kernel's AES key wrap (AES-NI on the native one) against `cryptography`'s RFC 3394, also past
    255 and 65,535 steps (the step counter's higher octets)."""
    k = _native.kernel("pgpcrypto")
    for size in (16, 24, 40, 48, 8 * 43, 8 * 11_000):
        kek, data = os.urandom(kek_size), os.urandom(size)
        assert k.aes_key_wrap(kek, data) == keywrap.aes_key_wrap(kek, data)
