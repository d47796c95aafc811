"""Pure-Python twin of ``engine._ed25519_c``: Ed25519 verification, one signature or many (keys varying).

Same names, arguments and results as the native kernel; the tests run every case on both.

* :func:`verify_one`: is ``check`` (64-octet signature R || S, then the message) valid under ``key``?
* :func:`verify_many`: the verdict of each ``(key, check)``, keys varying, each equal to :func:`verify_one`'s
  (but for a chance of about 2**-120 per call): one equation over them all; when it fails, halves of the
  keys are checked in turn down to single keys, whose checks are then verified alone.

The verdict is RFC 8032 section 5.1.7's cofactored group equation ``[8][S]B == [8]R + [8][h]A`` with
``h = SHA-512(R || A || M) mod L``, after libsodium's pre-checks: S < L, canonical encodings of A and R,
neither A nor R of small order (their encodings compared with the eight small-order points' as libsodium's
``has_small_order`` does, sign bit ignored) and both decompressing (RFC 8032 section 5.1.3).

It agrees with libsodium's ``crypto_sign_open`` (the cofactorless ``[S]B - [h]A == R``) on every
signature but those that carry a deliberately crafted small-order component: e.g. R' = R + T with T of
order 8 (S unchanged) is rejected by libsodium and accepted here, as RFC 8032 section 5.1.7 allows.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["features", "many_counts", "verify_many", "verify_one"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_IDENTITY = (0, 1, 1, 0)

# y of the eight points of small order (0, 1, the two of order 8, p - 1) and the non-canonical p, p + 1
_SMALL_ORDER_Y = frozenset(
    (
        0,
        1,
        2707385501144840649318225287225658788936804267575313519463743609750303402022,
        55188659117513257062467267217118295137698188065244968500265048394206261417927,
        _P - 1,
        _P,
        _P + 1,
    )
)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, T = XY/Z


def features() -> dict:
    """What this implementation is: ``{"native": False}``."""
    return {"native": False}


def _add(p: Point, q: Point) -> Point:
    """p + q (RFC 8032 section 5.1.4, a = -1)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _double(p: Point) -> Point:
    """2p (RFC 8032 section 5.1.4)."""
    x1, y1, z1, _ = p
    a, b, c = x1 * x1, y1 * y1, 2 * z1 * z1
    h = a + b
    e = h - (x1 + y1) ** 2
    g = a - b
    f = c + g
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _table(p: Point) -> list[Point]:
    """[0]p, [1]p, ..., [15]p: the multiples a 4-bit window picks."""
    out = [_IDENTITY, p]
    for _ in range(14):
        out.append(_add(out[-1], p))
    return out


def _straus(terms: list[tuple[int, list[Point]]]) -> Point:
    """The sum of [k] p over ``terms`` (k, :func:`_table` of p), with one chain of doublings (variable
    time: only public values come here)."""
    acc = _IDENTITY
    top = max(k.bit_length() for k, _ in terms)
    for shift in range((top + 3) // 4 * 4 - 4, -1, -4):
        for _ in range(4):
            acc = _double(acc)
        for k, table in terms:
            digit = (k >> shift) & 15
            if digit:
                acc = _add(acc, table[digit])
    return acc


def _decompress(s: bytes) -> Point | None:
    """The point encoded by ``s`` (RFC 8032 section 5.1.3); None when not canonical, of small order
    or not on the curve."""
    y = int.from_bytes(s, "little") & ((1 << 255) - 1)
    if y in _SMALL_ORDER_Y or y >= _P:
        return None
    sign = s[31] >> 7
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif vxx != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _split(key: bytes, check: bytes) -> tuple[int, Point, int, int] | None:
    """``(S, -R, h)`` after the pre-checks, or None."""
    if len(check) < 64:
        return None
    s = int.from_bytes(check[32:64], "little")
    if s >= _L:
        return None
    r = _decompress(check[:32])
    if r is None:
        return None
    h = int.from_bytes(hashlib.sha512(check[:32] + key + check[64:]).digest(), "little")
    x, y, z, t = r
    return s, (_P - x, y, z, _P - t), h


def _is_small(p: Point) -> bool:
    """Is [8]p the identity (X == 0 and Y == Z)?"""
    x, y, z, _ = _double(_double(_double(p)))
    return x % _P == 0 and (y - z) % _P == 0


_B = _decompress((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))
assert _B is not None
_B_TABLE = _table(_B)


def _equation(key: bytes, checks: list[bytes], weights: list[int]) -> bool:
    """[8]([sum z_i S_i] B - sum [z_i] R_i - [sum z_i h_i] A) == identity, after the pre-checks."""
    if len(key) != 32 or not checks:
        return False
    a = _decompress(key)
    if a is None:
        return False
    s_sum = h_sum = 0
    terms = []
    for check, z in zip(checks, weights, strict=True):
        got = _split(key, check)
        if got is None:
            return False
        s, minus_r, h = got
        s_sum += z * s
        h_sum += z * h
        terms.append((z, _table(minus_r)))
    x, y, z_, t = a
    terms += [(s_sum % _L, _B_TABLE), (h_sum % _L, _table((_P - x, y, z_, _P - t)))]
    return _is_small(_straus(terms))


def verify_one(key: bytes, check: bytes) -> bool:
    """Is ``check`` (signature R || S, then the message) a valid Ed25519 signature under ``key``?"""
    return _equation(key, [check], [1])


class _Group:
    """One key's checks in :func:`verify_many`: their indexes, the terms of -R_i with weights z_i, and
    the sums z_i S_i and z_i h_i (the weight of -A)."""

    __slots__ = ("h_sum", "indexes", "minus_a", "s_sum", "terms")

    def __init__(self, minus_a: Point) -> None:
        self.minus_a = minus_a
        self.indexes: list[int] = []
        self.terms: list[tuple[int, list[Point]]] = []
        self.s_sum = self.h_sum = 0


def _groups(items: list[tuple[bytes, bytes]]) -> list[_Group]:
    """The checks of ``items`` that pass the pre-checks, by key (first appearance first), with random
    odd 128-bit weights."""
    by_key: dict[bytes, _Group | None] = {}
    for i, (key, check) in enumerate(items):
        if len(key) != 32:
            continue
        if key not in by_key:
            a = _decompress(key)
            by_key[key] = None if a is None else _Group((_P - a[0], a[1], a[2], _P - a[3]))
        group = by_key[key]
        got = None if group is None else _split(key, check)
        if group is None or got is None:
            continue
        s, minus_r, h = got
        z = secrets.randbits(128) | 1
        group.indexes.append(i)
        group.terms.append((z, _table(minus_r)))
        group.s_sum += z * s
        group.h_sum += z * h
    return [g for g in by_key.values() if g is not None and g.indexes]


_counts = [0, 0]  # equations and single verifications of the last verify_many call


def _many_holds(groups: list[_Group]) -> bool:
    """Does the combined equation of ``groups`` hold?"""
    _counts[0] += 1
    terms = [(sum(g.s_sum for g in groups) % _L, _B_TABLE)]
    for g in groups:
        terms += g.terms
        terms.append((g.h_sum % _L, _table(g.minus_a)))
    return _is_small(_straus(terms))


def _accept(groups: list[_Group], verdicts: list[bool]) -> None:
    for g in groups:
        for i in g.indexes:
            verdicts[i] = True


def _bisect(
    groups: list[_Group], failing: bool, items: list[tuple[bytes, bytes]], verdicts: list[bool]
) -> None:
    """Verdicts for ``groups``: their equation holds, or halves are checked in turn down to single keys,
    whose checks are then verified alone (``failing``: the equation is known to fail)."""
    if not failing and _many_holds(groups):
        _accept(groups, verdicts)
        return
    if len(groups) == 1:
        for i in groups[0].indexes:
            verdicts[i] = verify_one(*items[i])
        _counts[1] += len(groups[0].indexes)
        return
    mid = len(groups) // 2
    if _many_holds(groups[:mid]):  # the failure is on the right
        _accept(groups[:mid], verdicts)
        _bisect(groups[mid:], True, items, verdicts)
    else:
        _bisect(groups[:mid], True, items, verdicts)
        _bisect(groups[mid:], False, items, verdicts)


def verify_many(items: list[tuple[bytes, bytes]]) -> list[bool]:
    """The verdict of each ``(key, check)`` of ``items`` (keys may differ and repeat), each equal to
    :func:`verify_one`'s: one equation with random 128-bit weights over them all; when it fails, halves
    of the keys are checked in turn down to single keys, whose checks are then verified alone."""
    verdicts = [False] * len(items)
    _counts[:] = [0, 0]
    groups = _groups(items)
    if groups:
        _bisect(groups, False, items, verdicts)
    return verdicts


def many_counts() -> tuple[int, int]:
    """``(equations, single verifications)`` the last :func:`verify_many` call made (tests, benchmarks)."""
    return _counts[0], _counts[1]
