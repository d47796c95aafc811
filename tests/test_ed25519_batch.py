"""The Ed25519 kernel (``engine._ed25519_c`` / ``engine._ed25519_py``): single verification and
``verify_many`` (a batch: one equation over several checks) agree with libsodium on valid and damaged
signatures, keep libsodium's pre-checks, and differ from it only on the cofactored / cofactorless case
RFC 8032 section 5.1.7 allows; ``select_fast`` decides as before."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp, crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

from engine import _ed25519_py as twin
from engine import _native
from engine.wkd.lean import LeanCert
from engine.wkd.lean_select import select_fast, select_plain
from engine.wkd.sample import sample_keyring
from engine.wkd.sources import CertBlob, split_stream
from tests.callcount import count_calls

IMPLS = _native.implementations("ed25519")
L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
ORDER8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022
# the encodings libsodium's has_small_order refuses (sign bit clear); with the sign bit set too
SMALL_ORDER = [
    y.to_bytes(32, "little")
    for y in (
        0,
        1,
        ORDER8_Y,
        55188659117513257062467267217118295137698188065244968500265048394206261417927,
        P - 1,
        P,
        P + 1,
    )
]
SMALL_ORDER += [e[:31] + bytes([e[31] | 0x80]) for e in SMALL_ORDER]


@pytest.fixture(params=sorted(IMPLS))
def ed(request: pytest.FixtureRequest):
    return IMPLS[request.param]


def _key(seed: int) -> SigningKey:
    return SigningKey(hashlib.sha256(seed.to_bytes(8, "big")).digest())


def _signed(sk: SigningKey, message: bytes) -> bytes:
    return bytes(sk.sign(message))  # R || S || message: a check


def _sodium(key: bytes, check: bytes) -> bool:
    try:
        crypto_sign_open(check, key)
    except (BadSignatureError, ValueError):
        return False
    return True


def _secret_scalar(sk: SigningKey) -> int:
    h = bytearray(hashlib.sha512(bytes(sk)).digest()[:32])
    h[0] &= 248
    h[31] = (h[31] & 63) | 64
    return int.from_bytes(h, "little")


def _challenge(r: bytes, key: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + key + message).digest(), "little") % L


def _encode(p: tuple[int, int, int, int]) -> bytes:
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _order8_point() -> tuple[int, int, int, int]:
    """A point of order 8 (the twin's decompression refuses it: computed here)."""
    y = ORDER8_Y
    u, v = (y * y - 1) % P, (twin._D * y * y + 1) % P
    x = pow(u * pow(v, P - 2, P), (P + 3) // 8, P)
    if (v * x * x - u) % P:
        x = x * twin._SQRT_M1 % P
    assert (v * x * x - u) % P == 0
    return x, y, 1, x * y % P


def _forge(sk: SigningKey, r_enc: bytes, message: bytes) -> bytes:
    """A check with R = ``r_enc`` and S = h a: [8][S]B == [8]R + [8][h]A holds when R has small order."""
    key = bytes(sk.verify_key)
    s = _challenge(r_enc, key, message) * _secret_scalar(sk) % L
    return r_enc + s.to_bytes(32, "little") + message


def _under(key: bytes, checks: list[bytes]) -> list[tuple[bytes, bytes]]:
    """``verify_many``'s items: every check under ``key``."""
    return [(key, check) for check in checks]


def test_valid_signatures_accepted(ed) -> None:
    rng = random.Random(1)
    for n in range(1, 9):
        sk = _key(n)
        key = bytes(sk.verify_key)
        checks = [
            _signed(sk, rng.randbytes(rng.choice((0, 1, 20, 32, 48, 64, 65, 100, 192)))) for _ in range(n)
        ]
        assert ed.verify_many(_under(key, checks)) == [True] * n
        assert all(ed.verify_one(key, c) for c in checks)
    for length in range(0, 200, 7 if ed is twin else 1):  # cryptography's (OpenSSL's) signer too
        private = Ed25519PrivateKey.generate()
        key = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        message = rng.randbytes(length)
        check = private.sign(message) + message
        assert ed.verify_one(key, check) and ed.verify_many(_under(key, [check, check])) == [True, True]


def test_every_bit_flip_rejected(ed) -> None:
    sk = _key(7)
    key = bytes(sk.verify_key)
    good = _signed(sk, bytes(range(32)))
    other = _signed(sk, b"other")
    step = 1 if "native" not in IMPLS or ed is not twin else 5  # the twin: every fifth bit
    for bit in range(0, len(good) * 8, step):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << bit % 8
        assert not ed.verify_one(key, bytes(bad)), bit
        assert ed.verify_many(_under(key, [other, bytes(bad)])) == [True, False], bit
    for bit in range(0, 256, step):
        bad_key = bytearray(key)
        bad_key[bit // 8] ^= 1 << bit % 8
        assert not ed.verify_one(bytes(bad_key), good), bit
        assert ed.verify_many([(bytes(bad_key), good), (key, other)]) == [False, True], bit


def test_s_plus_l_rejected(ed) -> None:
    sk = _key(3)
    key = bytes(sk.verify_key)
    check = _signed(sk, b"message")
    s = int.from_bytes(check[32:64], "little")
    big = check[:32] + (s + L).to_bytes(32, "little") + check[64:]  # the same S mod L: the equation holds
    assert ed.verify_one(key, check) and not _sodium(key, big)
    assert not ed.verify_one(key, big)
    assert ed.verify_many(_under(key, [check, big])) == [True, False]
    assert ed.verify_many(_under(key, [big, check])) == [False, True]


def test_small_order_key_rejected(ed) -> None:
    """A = a point of small order with R = [r]B, S = r satisfies the cofactored equation: refused only by
    the small-order check (as libsodium refuses it)."""
    r = 12345
    r_enc = crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
    check = r_enc + r.to_bytes(32, "little") + b"message"
    for key in SMALL_ORDER:
        assert not _sodium(key, check)
        assert not ed.verify_one(key, check)
        assert ed.verify_many(_under(key, [check, check])) == [False, False]


def test_small_order_r_rejected(ed) -> None:
    """R = a point of small order with S = h a satisfies the cofactored equation: refused only by the
    small-order check (as libsodium refuses it)."""
    sk = _key(5)
    key = bytes(sk.verify_key)
    good = _signed(sk, b"good")
    for r_enc in SMALL_ORDER:
        check = _forge(sk, r_enc, b"message")
        assert not _sodium(key, check)
        assert not ed.verify_one(key, check)
        assert ed.verify_many(_under(key, [good, check])) == [True, False]
    order8 = _encode(_order8_point())
    assert order8 in SMALL_ORDER


def test_non_canonical_encodings_rejected(ed) -> None:
    sk = _key(9)
    key = bytes(sk.verify_key)
    good = _signed(sk, b"m")
    for y in range(P, 2**255):  # y >= p: not canonical, for R and for A, both signs
        for sign in (0, 1):
            enc = (y | sign << 255).to_bytes(32, "little")
            assert not ed.verify_one(key, enc + good[32:])
            assert not ed.verify_one(enc, good)
            assert ed.verify_many([(key, good), (key, enc + good[32:]), (enc, good)]) == [True, False, False]


def test_points_off_the_curve_rejected(ed) -> None:
    sk = _key(11)
    key = bytes(sk.verify_key)
    good = _signed(sk, b"m")
    off = [y for y in range(2, 40) if twin._decompress(y.to_bytes(32, "little")) is None]
    assert off
    for y in off:
        enc = y.to_bytes(32, "little")
        assert not ed.verify_one(enc, good) and not ed.verify_one(key, enc + good[32:])
        assert ed.verify_many([(key, good), (key, enc + good[32:]), (enc, good)]) == [True, False, False]
    assert not ed.verify_one(key, good[:63])
    assert ed.verify_many(_under(key, [good, good[:63]])) == [True, False]
    assert not ed.verify_one(key[:31], good)
    assert ed.verify_many([(key[:31], good), (key, good)]) == [False, True]


def test_one_bad_among_good_is_pinpointed(ed) -> None:
    rng = random.Random(2)
    sk = _key(2)
    key = bytes(sk.verify_key)
    for n in range(2, 9):
        checks = [_signed(sk, rng.randbytes(32)) for _ in range(n)]
        where = rng.randrange(n)
        bad = bytearray(checks[where])
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        checks[where] = bytes(bad)
        assert ed.verify_many(_under(key, checks)) == [i != where for i in range(n)]
        assert [ed.verify_one(key, c) for c in checks] == [i != where for i in range(n)]
        signed_by_other = _signed(_key(100 + n), b"x")
        checks[where] = signed_by_other
        assert ed.verify_many(_under(key, checks)) == [i != where for i in range(n)]


def test_cofactored_accepts_what_libsodium_refuses(ed) -> None:
    """The one permitted difference from libsodium: R' = R + T with T of order 8 and S = r + h' a (h' over
    R'). [S]B - [h']A == R != R', so libsodium's cofactorless check refuses; [8]R' == [8]R, so RFC 8032
    section 5.1.7's cofactored equation ([8][S]B == [8]R' + [8][h']A) holds and this kernel accepts.
    Such a signature needs a deliberately crafted small-order component; honest signers never make one."""
    sk = _key(13)
    key = bytes(sk.verify_key)
    message = b"cofactor"
    r = 987654321
    r_point = twin._decompress(crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little")))
    assert r_point is not None
    r_enc = _encode(twin._add(r_point, _order8_point()))
    s = (r + _challenge(r_enc, key, message) * _secret_scalar(sk)) % L
    check = r_enc + s.to_bytes(32, "little") + message
    assert not _sodium(key, check)
    assert ed.verify_one(key, check)
    assert ed.verify_many(_under(key, [_signed(sk, b"a"), check, _signed(sk, b"b")])) == [True] * 3
    honest = (r + _challenge(_encode(r_point), key, message) * _secret_scalar(sk)) % L  # without T: valid
    assert _sodium(key, _encode(r_point) + honest.to_bytes(32, "little") + message)


def _damaged(rng: random.Random, sk: SigningKey) -> tuple[bytes, bytes]:
    """``(key, check)``: valid, or with one bit flipped in R, S, the message or the key."""
    key = bytes(sk.verify_key)
    check = _signed(sk, rng.randbytes(rng.choice((0, 20, 32, 48, 64))))
    what = rng.randrange(4)
    if what == 1:
        bad = bytearray(check)
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        check = bytes(bad)
    elif what == 2:
        bad = bytearray(key)
        bad[rng.randrange(32)] ^= 1 << rng.randrange(8)
        key = bytes(bad)
    return key, check


def test_agrees_with_libsodium(ed) -> None:
    rng = random.Random(4)
    count = 3000 if ed is not twin else 150
    valid = 0
    for i in range(count):
        key, check = _damaged(rng, _key(i % 50))
        expect = _sodium(key, check)
        valid += expect
        assert ed.verify_one(key, check) == expect, i
    assert count // 3 < valid < count


def test_batches_agree_with_libsodium(ed) -> None:
    rng = random.Random(6)
    for i in range(300 if ed is not twin else 20):
        sk = _key(i)
        key = bytes(sk.verify_key)
        checks = [_signed(sk, rng.randbytes(32)) for _ in range(rng.randrange(1, 6))]
        if rng.random() < 0.5:
            where = rng.randrange(len(checks))
            bad = bytearray(checks[where])
            bad[rng.randrange(64)] ^= 1 << rng.randrange(8)
            checks[where] = bytes(bad)
        assert ed.verify_many(_under(key, checks)) == [_sodium(key, c) for c in checks]


@pytest.mark.skipif("native" not in IMPLS, reason="native kernel not built")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(1, 4))
def test_native_equals_twin(seed: int, n: int) -> None:
    rng = random.Random(seed)
    sk = _key(seed % 97)
    pairs = [_damaged(rng, sk) for _ in range(n)]
    key = pairs[0][0]
    checks = [c for _, c in pairs]
    native = IMPLS["native"]
    assert [native.verify_one(key, c) for c in checks] == [twin.verify_one(key, c) for c in checks]
    assert native.verify_many(_under(key, checks)) == twin.verify_many(_under(key, checks))


def _ed_certs(count: int, seed: int) -> list[bytes]:
    ring = sample_keyring(count, seed, rsa_every=0)
    blobs = split_stream(io.BufferedReader(io.BytesIO(ring)), "e")  # type: ignore[arg-type]
    return [b.data for b in blobs if isinstance(b, CertBlob)]


def test_select_fast_batches_and_decides_as_plain(impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ed25519 certificates, intact and with bits flipped in their signatures: ``select_fast`` verifies each
    in one ``verify_many`` call (with the native kernel; with the slow twin, libsodium one at a time), whose
    verdicts are single verifications', and decides as ``select_plain`` (libsodium) does."""
    calls = count_calls(monkeypatch, _native.kernel("ed25519"), ("verify_many", "verify_one"))
    rng = random.Random(8)
    certs = _ed_certs(12 if impl == "native" else 5, 3)
    now = 1_900_000_000
    for data in certs:
        got = select_fast(data, None, now)
        assert got is not None
        assert got[0] and not got[3]  # every sample address valid
    native = impl == "native"
    assert calls == {"verify_many": len(certs) if native else 0, "verify_one": 0}
    reasons: set[str] = set()
    for data in certs:
        for _ in range(16 if impl == "native" else 4):
            damaged = bytearray(data)
            damaged[rng.randrange(40, len(data))] ^= 1 << rng.randrange(8)
            for domains in (frozenset(["example.org"]), None):
                got = select_fast(bytes(damaged), domains, now)
                if got is None:
                    continue
                chosen, _, _, left, _, _ = got
                plain_left: list[tuple[str, str]] = []
                assert select_plain(LeanCert(bytes(damaged)), domains, now, plain_left) == chosen
                assert left == plain_left
                reasons.update(r for r, _ in left)
    assert (calls["verify_many"] > len(certs)) == native and "no valid self-signature" in reasons
    assert calls["verify_one"] == 0  # every check the selection asks for was among those verified
