"""Fixed-base X25519 of the native ``pgpcrypto`` kernel (``ext/csrc/x25519fb.c``): for one recipient and
many ephemeral secrets, the same 32 octets as libsodium's ``crypto_scalarmult`` / ``crypto_scalarmult_base``
(RFC 7748 vectors, random secrets and recipients, clamping bits, recipients of small order, on the twist,
u >= p, top bit set), and ``ecdh25519_pkesks`` through the tables equal to the per-message packets."""

from __future__ import annotations

import random

import pytest
from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.exceptions import RuntimeError as NaclRuntimeError

from engine import _native
from engine.openpgp import keygen, message, pkesk
from engine.openpgp.constants import SymmetricAlgorithm
from engine.openpgp.pkesk import SessionKey, pkesk_packet

pytestmark = pytest.mark.skipif(
    "native" not in _native.implementations("pgpcrypto"), reason="native pgpcrypto kernel not built"
)

P = 2**255 - 19
SMALL_ORDER_U = [  # libsodium's has_small_order list: 0, 1, the two of order 8, p - 1, p, p + 1
    0,
    1,
    0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
    0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
    P - 1,
    P,
    P + 1,
]


def _native_kernel():  # type: ignore[no-untyped-def]
    return _native.implementations("pgpcrypto")["native"]


def _u(n: int) -> bytes:
    return n.to_bytes(32, "little")


def _on_curve(u: bytes) -> bool:
    """Is u (bit 255 ignored, mod p) the u-coordinate of a point of Curve25519 (not of its twist)?"""
    x = int.from_bytes(u, "little") % 2**255 % P
    return pow((x**3 + 486662 * x * x + x) % P, (P - 1) // 2, P) != P - 1


def _nacl(secret: bytes, u: bytes) -> bytes | None:
    try:
        return crypto_scalarmult(secret, u)
    except NaclRuntimeError:  # all-zero result or small-order point
        return None


def _fixed(u: bytes, secrets: list[bytes]) -> list[tuple[bytes | None, bytes]] | None:
    return _native_kernel()._x25519_fixed(u, secrets)  # type: ignore[no-any-return]


def _assert_matches_libsodium(u: bytes, secrets: list[bytes]) -> None:
    got = _fixed(u, secrets)
    assert got is not None, "a point of large order must get a table"
    for secret, (shared, eph) in zip(secrets, got, strict=True):
        assert shared == crypto_scalarmult(secret, u)
        assert eph == crypto_scalarmult_base(secret)


def test_rfc7748_section_5_2_vectors() -> None:
    vectors = [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",  # top bit set
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ]  # fmt: skip
    (scalar, u, out), (twist_scalar, twist_u, twist_out) = vectors
    ((shared, eph),) = _fixed(bytes.fromhex(u), [bytes.fromhex(scalar)])  # type: ignore[misc]
    assert shared == bytes.fromhex(out)
    assert eph == crypto_scalarmult_base(bytes.fromhex(scalar))
    assert not _on_curve(bytes.fromhex(twist_u))  # no table: the batch kernel keeps libsodium's ladder
    assert _fixed(bytes.fromhex(twist_u), [bytes.fromhex(twist_scalar)]) is None
    assert crypto_scalarmult(bytes.fromhex(twist_scalar), bytes.fromhex(twist_u)) == bytes.fromhex(twist_out)


def test_rfc7748_iterated_vector() -> None:
    """k, u = X25519(k, u), k from k = u = 9: after 1 and after 1,000 iterations."""
    k = u = _u(9)
    for i in range(1, 1001):
        ((shared, eph),) = _fixed(u, [k])  # type: ignore[misc]
        assert eph == crypto_scalarmult_base(k)
        k, u = shared, k  # type: ignore[assignment]
        if i == 1:
            assert k.hex() == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"


def test_rfc7748_section_6_1_diffie_hellman() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_pub = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    bob_pub = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    ((ab, a_pub),) = _fixed(bob_pub, [alice])  # type: ignore[misc]
    ((ba, b_pub),) = _fixed(alice_pub, [bob])  # type: ignore[misc]
    assert (a_pub, b_pub) == (alice_pub, bob_pub)
    assert ab == ba == shared


def test_random_secrets_and_recipients_match_libsodium() -> None:
    """4,000 random secrets against 20 random recipients of large order (prime order and mixed)."""
    rng = random.Random(7748)
    recipients = [crypto_scalarmult_base(rng.randbytes(32)) for _ in range(10)]
    while len(recipients) < 20:  # random curve points: most have a small-order component too
        u = rng.randbytes(32)
        if _fixed(u, []) is not None:
            recipients.append(u)
    for u in recipients:
        _assert_matches_libsodium(u, [rng.randbytes(32) for _ in range(200)])


def test_clamping_bits() -> None:
    """Every combination of the bits clamping sets or clears (0, 1, 2, 254, 255), others random, all 0, all 1."""
    rng = random.Random(1)
    u = crypto_scalarmult_base(rng.randbytes(32))
    secrets = [bytes(32), b"\xff" * 32, b"\x01" + bytes(31), bytes(31) + b"\x80"]
    for base in (bytes(32), b"\xff" * 32, rng.randbytes(32)):
        for combo in range(32):
            s = bytearray(base)
            for bit_index, bit in enumerate((0, 1, 2, 254, 255)):
                byte, mask = bit >> 3, 1 << (bit & 7)
                s[byte] = s[byte] | mask if combo >> bit_index & 1 else s[byte] & ~mask
            secrets.append(bytes(s))
    _assert_matches_libsodium(u, secrets)


def test_every_digit_value() -> None:
    """Secrets whose radix-16 digits take every value (and so every table column, sign, carry)."""
    u = crypto_scalarmult_base(bytes(range(32)))
    secrets = [bytes([d * 0x11] * 32) for d in range(16)] + [bytes([d] * 32) for d in range(256)]
    _assert_matches_libsodium(u, secrets)


def test_small_order_recipients_get_no_table_and_are_refused() -> None:
    secrets = [bytes([i + 1]) * 32 for i in range(6)]
    native, pure = _native_kernel(), _native.implementations("pgpcrypto")["pure"]
    for n in SMALL_ORDER_U:
        for u in (_u(n), _u(n | 1 << 255) if n < 2**255 else None):
            if u is None:
                continue
            assert _fixed(u, secrets) is None
            assert all(_nacl(s, u) is None for s in secrets)
            for kernel in (native, pure):
                with pytest.raises(ValueError):
                    kernel.ecdh25519_pkesks(u, b"p", b"h", 8, 16, 9, [b"k" * 16] * 6, secrets)


def test_twist_and_non_canonical_recipients() -> None:
    """Recipients on the twist (no table: libsodium's ladder), u >= p (taken mod p), the top bit set
    (ignored): the batch equals the pure kernel (libsodium), and any table equals libsodium."""
    rng = random.Random(3)
    native, pure = _native_kernel(), _native.implementations("pgpcrypto")["pure"]
    secrets = [rng.randbytes(32) for _ in range(8)]
    keys = [rng.randbytes(16) for _ in secrets]
    randoms = [rng.randbytes(31) + b"\x11" for _ in range(40)]
    assert [_fixed(u, []) is not None for u in randoms] == [_on_curve(u) for u in randoms]
    twist = [u for u in randoms if not _on_curve(u)]
    assert len(twist) > 5
    candidates = twist + [_u(P + k) for k in range(2, 19)] + [_u(k) for k in range(2, 19)]
    candidates += [bytes(u[:31]) + bytes([u[31] | 0x80]) for u in candidates[:20]]
    candidates += [_u(int.from_bytes(crypto_scalarmult_base(rng.randbytes(32)), "little") | 1 << 255)]
    tables = 0
    for u in candidates:
        expect = [(_nacl(s, u), crypto_scalarmult_base(s)) for s in secrets]
        got = _fixed(u, secrets)
        if got is not None:
            tables += 1
            assert got == expect
        args = (u, b"param", b"head", 8, 16, 9, keys, secrets)
        if all(shared is not None for shared, _ in expect):
            assert native.ecdh25519_pkesks(*args) == pure.ecdh25519_pkesks(*args)
        else:
            with pytest.raises(ValueError):
                native.ecdh25519_pkesks(*args)
    assert tables > 5


def test_cache_of_many_recipients() -> None:
    """More recipients than the cache holds, each twice: the same packets as the pure kernel."""
    rng = random.Random(5)
    native, pure = _native_kernel(), _native.implementations("pgpcrypto")["pure"]
    recipients = [crypto_scalarmult_base(rng.randbytes(32)) for _ in range(20)]
    for u in recipients + recipients[::-1]:
        secrets = [rng.randbytes(32) for _ in range(5)]
        args = (u, b"param", b"", 10, 32, None, [rng.randbytes(32) for _ in secrets], secrets)
        assert native.ecdh25519_pkesks(*args) == pure.ecdh25519_pkesks(*args)


@pytest.mark.parametrize("version", [3, 6])
def test_batch_equals_pkesk_packet_for_several_recipients(version: int) -> None:
    rng = random.Random(version)
    for i in range(3):
        cert = keygen.generate(f"Fixed {i} <fixed{i}@example.org>")
        (r,) = message.resolve_recipients([cert.public()])
        keys = [rng.randbytes(32) for _ in range(12)]
        secrets = [rng.randbytes(32) for _ in keys]
        cipher = SymmetricAlgorithm.AES256 if version == 3 else None
        batch = pkesk.ecdh25519_packets(r, keys, cipher, secrets, version)
        one_by_one = [
            pkesk_packet(r, SessionKey(cipher, k), version, False, lambda n, s=s: s[:n])  # type: ignore[misc]
            for k, s in zip(keys, secrets, strict=True)
        ]
        assert batch == one_by_one
