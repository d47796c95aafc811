"""``verify_many`` of the Ed25519 kernel (native and twin): one equation over the checks of many keys, each
verdict equal to ``verify_one``'s whatever the other checks are; and the WKD build's use of it, one call per
task (``prepare_fast`` / ``verify_prepared`` / ``finish_fast``), deciding as ``select_fast`` does alone."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from engine import _ed25519_py as twin
from engine import _native
from engine.wkd.build import BuildOptions, select_packed
from engine.wkd.lean import LeanCert
from engine.wkd.lean_select import finish_fast, prepare_fast, select_fast, select_plain, verify_prepared
from engine.wkd.sample import rsa_pool, sample_keyring
from engine.wkd.sources import CertBlob, split_stream
from tests.callcount import count_calls

IMPLS = _native.implementations("ed25519")
L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
ORDER8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022

Item = tuple[bytes, bytes]


@pytest.fixture(params=sorted(IMPLS))
def ed(request: pytest.FixtureRequest):
    return IMPLS[request.param]


def _key(seed: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"many" + seed.to_bytes(8, "big")).digest())


def _items(rng: random.Random, keys: int, per_key: tuple[int, int]) -> list[Item]:
    """Valid checks of ``keys`` keys, ``per_key`` (low, high) each, shuffled (a key's checks not adjacent)."""
    out = []
    for k in range(keys):
        sk = _key(k)
        key = bytes(sk.verify_key)
        out += [(key, bytes(sk.sign(rng.randbytes(32)))) for _ in range(rng.randint(*per_key))]
    rng.shuffle(out)
    return out


def _flip(rng: random.Random, data: bytes, within: int | None = None) -> bytes:
    bad = bytearray(data)
    bad[rng.randrange(within or len(bad))] ^= 1 << rng.randrange(8)
    return bytes(bad)


def _other_message(check: bytes) -> bytes:
    """``check`` with a bit of its message flipped: it passes the pre-checks, the equation fails."""
    return check[:64] + bytes([check[64] ^ 1]) + check[65:]


def _expect(ed, items: list[Item]) -> list[bool]:
    return [ed.verify_one(key, check) for key, check in items]


def test_empty_and_one(ed) -> None:
    assert ed.verify_many([]) == []
    sk = _key(1)
    key, check = bytes(sk.verify_key), bytes(sk.sign(b"one"))
    assert ed.verify_many([(key, check)]) == [True]
    assert ed.verify_many([(key, _flip(random.Random(1), check, 64))]) == [False]
    assert ed.verify_many([(key[:31], check)]) == [False]


def test_valid_sets_across_keys(ed) -> None:
    rng = random.Random(2)
    for keys in (1, 2, 3, 7, 20 if ed is twin else 60):
        items = _items(rng, keys, (1, 4))
        assert ed.verify_many(items) == [True] * len(items)


def test_invalid_among_many_pinpointed(ed) -> None:
    """One, two or several damaged checks (or keys) anywhere: every verdict is ``verify_one``'s."""
    rng = random.Random(3)
    rounds = 6 if ed is twin else 40
    for r in range(rounds):
        items = _items(rng, rng.randint(2, 8 if ed is twin else 40), (1, 4))
        for _ in range(1 + r % 4):
            where = rng.randrange(len(items))
            key, check = items[where]
            items[where] = (_flip(rng, key), check) if rng.random() < 0.2 else (key, _flip(rng, check))
        got = ed.verify_many(items)
        assert got == _expect(ed, items)
        assert not all(got)


def test_duplicate_keys_and_checks(ed) -> None:
    """The same key in several places (and the same check twice), with a bad check under it: the key's
    other checks are valid, another key's too."""
    rng = random.Random(4)
    sk, other = _key(10), _key(11)
    key, key2 = bytes(sk.verify_key), bytes(other.verify_key)
    checks = [bytes(sk.sign(rng.randbytes(20))) for _ in range(5)]
    bad = _flip(rng, checks[2], 64)
    items = [
        (key, checks[0]),
        (key2, bytes(other.sign(b"x"))),
        (key, checks[1]),
        (key, bad),
        (key, checks[0]),
    ]
    items += [(key2, bytes(other.sign(b"y"))), (key, checks[3])]
    assert ed.verify_many(items) == [True, True, True, False, True, True, True]


def _small_order_encodings() -> list[bytes]:
    ys = (0, 1, ORDER8_Y, P - 1, P, P + 1)
    out = [y.to_bytes(32, "little") for y in ys]
    return out + [e[:31] + bytes([e[31] | 0x80]) for e in out]


def test_refused_encodings_mixed_in(ed) -> None:
    """Small-order or non-canonical R or A, S >= L, short checks, off-curve points among valid checks of
    other keys: refused, the others accepted."""
    rng = random.Random(5)
    items = _items(rng, 6, (1, 3))
    good_key, good = items[0]
    bad: list[Item] = []
    for enc in _small_order_encodings()[:: 1 if ed is not twin else 3]:
        bad += [(good_key, enc + good[32:]), (enc, good)]
    s = int.from_bytes(good[32:64], "little")
    bad.append((good_key, good[:32] + (s + L).to_bytes(32, "little") + good[64:]))
    bad.append((good_key, good[:63]))
    off = next(y for y in range(2, 40) if twin._decompress(y.to_bytes(32, "little")) is None)
    bad += [(good_key, off.to_bytes(32, "little") + good[32:]), (off.to_bytes(32, "little"), good)]
    mixed = items + bad
    rng.shuffle(mixed)
    assert ed.verify_many(mixed) == [item not in bad for item in mixed]


def test_over_one_chunk() -> None:
    """More checks than one kernel call takes (1024): split, verdicts in place."""
    native = IMPLS.get("native")
    if native is None:
        pytest.skip("native kernel not built")
    rng = random.Random(6)
    items = _items(rng, 400, (3, 3))
    for where in (5, 1023, 1024, 1100):
        items[where] = (items[where][0], _flip(rng, items[where][1], 64))
    got = native.verify_many(items)
    assert len(items) > 1024 and got == [i not in (5, 1023, 1024, 1100) for i in range(len(items))]


def test_bisection_cost_bounded(ed) -> None:
    """All valid: one equation. One bad key among 16: the whole equation and at most two halves per level,
    only that key's checks verified alone. Every key bad but one check: at most 2 equations per key.
    Checks refused by the pre-checks alone: one equation, nothing alone."""
    rng = random.Random(7)
    items = _items(rng, 16, (2, 2))
    assert ed.verify_many(items) == [True] * 32 and ed.many_counts() == (1, 0)
    items[9] = (items[9][0], _other_message(items[9][1]))
    assert ed.verify_many(items) == [i != 9 for i in range(32)]
    equations, singles = ed.many_counts()
    assert 2 <= equations <= 1 + 2 * 4 and singles == 2
    every = [(key, _other_message(check)) for key, check in items]  # item 9 restored
    assert ed.verify_many(every) == [i == 9 for i in range(32)]
    equations, singles = ed.many_counts()
    assert equations <= 2 * 16 and singles == 32
    refused = [(key, check[:63]) for key, check in items[:5]]
    assert ed.verify_many(items[10:] + refused) == [True] * 22 + [False] * 5 and ed.many_counts() == (1, 0)


def test_cancelling_errors_caught(ed) -> None:
    """S + 1 on one check and S - 1 on another (same key, or two keys): equal weights would cancel the
    errors; the random weights do not."""
    rng = random.Random(12)
    items = _items(rng, 3, (2, 2))
    by_key: dict[bytes, list[int]] = {}
    for i, (key, _) in enumerate(items):
        by_key.setdefault(key, []).append(i)
    first, second = list(by_key.values())[:2]
    for up, down in ((first[0], first[1]), (first[0], second[0])):
        bad = list(items)
        for where, delta in ((up, 1), (down, -1)):
            key, check = bad[where]
            s = (int.from_bytes(check[32:64], "little") + delta) % L
            bad[where] = (key, check[:32] + s.to_bytes(32, "little") + check[64:])
        assert ed.verify_many(bad) == [i not in (up, down) for i in range(len(bad))]


@pytest.mark.skipif("native" not in IMPLS, reason="native kernel not built")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(0, 6), st.integers(0, 3))
def test_native_equals_twin(seed: int, keys: int, damaged: int) -> None:
    rng = random.Random(seed)
    items = _items(rng, keys, (1, 2))
    for _ in range(damaged if items else 0):
        where = rng.randrange(len(items))
        key, check = items[where]
        items[where] = (_flip(rng, key), check) if rng.random() < 0.3 else (key, _flip(rng, check))
    assert IMPLS["native"].verify_many(items) == twin.verify_many(items) == _expect(twin, items)


@pytest.mark.skipif("native" not in IMPLS, reason="native kernel not built")
@pytest.mark.parametrize("fast", [True, False])
def test_field_paths_agree_with_verify_one(fast: bool) -> None:
    """``verify_many``'s field products with mulx/adcx/adox (where the CPU has them) and in portable C:
    valid and damaged checks of many keys, every verdict that of ``verify_one`` (which computes on other
    limbs), the valid ones in one equation."""
    native = IMPLS["native"]
    rng = random.Random(13)
    try:
        native._fast_field(fast)
        for r in range(24):
            items = _items(rng, rng.randint(1, 30), (1, 4))
            for _ in range(r % 4):
                where = rng.randrange(len(items))
                key, check = items[where]
                items[where] = (_flip(rng, key), check) if r % 3 == 0 else (key, _flip(rng, check, 64))
            got = native.verify_many(items)
            counts = native.many_counts()
            assert got == _expect(native, items)
            if r % 4 == 0:  # all valid: one equation, none alone (a wrong sum would fall back to verify_one)
                assert all(got) and counts == (1, 0)
            else:
                assert not all(got)
    finally:
        native._fast_field(True)


# ---- the WKD build: one verify_many per task ------------------------------------------------------


def _blobs(count: int, seed: int, rsa_every: int = 0) -> list[CertBlob]:
    pool = rsa_pool(2, 2048) if rsa_every else ()
    ring = sample_keyring(count, seed, pool, rsa_every)
    blobs = split_stream(io.BufferedReader(io.BytesIO(ring)), "t")  # type: ignore[arg-type]
    return [b for b in blobs if isinstance(b, CertBlob)]


def _damaged(rng: random.Random, blobs: list[CertBlob]) -> list[CertBlob]:
    """Every other certificate with a bit flipped (a signature broken, or the certificate refused)."""
    out = []
    for i, b in enumerate(blobs):
        data = b.data if i % 2 else b.data[:40] + _flip(rng, b.data[40:])
        out.append(CertBlob(b.source, b.offset, data, b.notes))
    return out


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    return count_calls(monkeypatch, _native.kernel("ed25519"), ("verify_many", "verify_one"))


def test_prepared_batch_decides_as_select_fast(impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Certificates (Ed25519 and RSA, half of them damaged) prepared, verified in one call and decided:
    the same results as ``select_fast`` of each alone and as ``select_plain``."""
    rng = random.Random(8)
    blobs = _damaged(rng, _blobs(24 if impl == "native" else 8, 9, rsa_every=5))
    now = 1_900_000_000
    for domains in (frozenset(["example.org"]), None):
        prepared = [prepare_fast(b.data, domains, now) for b in blobs]
        calls = _counting(monkeypatch)
        verify_prepared([p for p in prepared if p is not None])
        assert calls["verify_many"] == (impl == "native")
        for blob, p in zip(blobs, prepared, strict=True):
            alone = select_fast(blob.data, domains, now)
            if p is None:
                assert alone is None
                continue
            before = calls["verify_one"]
            got = finish_fast(p, domains, now)
            assert calls["verify_one"] == before  # every check asked for was verified in the batch
            assert alone is not None and got[:4] == alone[:4]
            unverified = prepare_fast(blob.data, domains, now)  # no verify_prepared: each check on demand
            assert unverified is not None and finish_fast(unverified, domains, now)[:4] == got[:4]
            plain_left: list[tuple[str, str]] = []
            assert select_plain(LeanCert(blob.data), domains, now, plain_left) == got[0]
            assert plain_left == got[3]


def test_packed_task_one_call_same_rows(impl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``select_packed`` of a task verifies its Ed25519 checks in one ``verify_many`` call and gives the
    rows and reasons of the certificates selected one by one."""
    rng = random.Random(9)
    blobs = _damaged(rng, _blobs(16 if impl == "native" else 6, 11))
    opts = BuildOptions(domains=frozenset(["example.org"]), now=1_900_000_000, root=str(tmp_path / "a"))
    (tmp_path / "a").mkdir()
    calls = _counting(monkeypatch)
    whole = select_packed(opts, blobs)[0]
    assert calls["verify_many"] == (impl == "native")
    assert whole is not None and whole.rows
    (tmp_path / "b").mkdir()
    one_opts = BuildOptions(domains=opts.domains, now=opts.now, root=str(tmp_path / "b"))
    rows, skipped = [], []
    for blob in blobs:
        part = select_packed(one_opts, [blob])[0]
        assert part is not None
        rows += part.rows
        skipped += part.skipped
    assert [r[:3] for r in whole.rows] == [r[:3] for r in rows] and whole.skipped == skipped
    assert any(reason == "no valid self-signature" for reason, _ in skipped)
    for path in (tmp_path / "b").rglob("*"):
        if path.is_file():
            assert (tmp_path / "a" / path.relative_to(tmp_path / "b")).read_bytes() == path.read_bytes()
