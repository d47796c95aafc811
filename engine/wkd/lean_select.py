"""The reference selection rules (:func:`engine.wkd.build.select_cert`) on a :class:`LeanCert`.

Each rule mirrors ``engine.openpgp.keys`` (newest valid self-signature at a time, hard and soft
revocations, key expiry from the primary User ID's self-signature, subkeys valid with their newest
binding) but asks for a signature's verification only when the answer changes the outcome. The common
shape (one signature per User ID, no key expiry or revocation) takes a one-pass path, :func:`select_plain`;
:func:`select_fast` makes the same decisions from one call of the ``wkdsel`` kernel (``plain_cert``). A
WKD task runs its three steps over all its certificates (:func:`prepare_fast` each, :func:`verify_prepared`
once: every Ed25519 signature of the task in one ``verify_many`` call, :func:`finish_fast` each).
"""

from __future__ import annotations

from typing import NamedTuple

from engine import _native
from engine.errors import InvalidArgument, MalformedPacket, UnsupportedError
from engine.openpgp.public_key import PublicKey
from engine.openpgp.reader import BodyReader
from engine.openpgp.userid import _ANGLE, _BARE
from engine.wkd import lean as _lean
from engine.wkd.lean import (
    _KNOWN_MASK,
    LeanCert,
    Sig,
    Unusual,
    _clock,
    binding_suffix,
    certification_suffix,
    live,
    packet,
    revoked_at,
)
from engine.wkd.validate import normalize_address

__all__ = [
    "Chosen",
    "Prepared",
    "finish_fast",
    "prepare_fast",
    "select_fast",
    "select_general",
    "select_lean",
    "select_plain",
    "verify_prepared",
]

_DIRECT, _KEY_REV, _BINDING, _SUB_REV, _CERT_REV = 0x1F, 0x20, 0x18, 0x28, 0x30


class _Uid:
    """A User ID of the certificate: its signatures parsed on first use (:func:`_parse`)."""

    __slots__ = ("body", "cands", "data", "fields", "parsed", "raw", "revs", "self_sig")

    def __init__(self, body: bytes, raw: list[bytes], fields: list[tuple | None]) -> None:
        self.body, self.raw, self.fields = body, raw, fields
        self.cands: list[Sig] = []  # certifications, newest first
        self.revs: list[Sig] = []
        self.parsed = False
        self.data = b""  # the certification suffix, hashed by every signature over this User ID
        self.self_sig: dict[int, Sig | None] = {}  # by time


class Chosen(NamedTuple):
    """One address to publish: parts of the address, minimal key bytes and status."""

    local: str
    domain: str
    address: str
    data: bytes
    status: str


def _parse(c: LeanCert, u: _Uid) -> _Uid:
    if not u.parsed:
        sigs = c.sigs(u.raw, u.fields)
        if len(sigs) == 1:  # the common case, without the sorting
            s = sigs[0]
            u.cands = [s] if 0x10 <= s.type <= 0x13 and s.created >= c.created else []
            u.revs = [s] if s.type == _CERT_REV else []
        else:
            cands = [s for s in sigs if 0x10 <= s.type <= 0x13 and s.created >= c.created]  # gpg's rule too
            u.cands = sorted(cands, key=_newest_first)
            u.revs = [s for s in sigs if s.type == _CERT_REV]
        u.data = certification_suffix(u.body)
        u.parsed = True
    return u


def _newest_first(s: Sig) -> int:
    return -s.created


def _self_sig(c: LeanCert, u: _Uid, at: int) -> Sig | None:
    """The newest live self-signature of ``u`` at ``at`` that verifies (memoized by time)."""
    memo = u.self_sig
    if at in memo:
        return memo[at]
    got = None
    for s in _parse(c, u).cands:
        if s.live(at) and c.verify(s, u.data):
            got = s
            break
    memo[at] = got
    return got


def _uid_revoked(c: LeanCert, u: _Uid, at: int) -> bool:
    revs = _parse(c, u).revs
    return bool(revs) and revoked_at([s for s in revs if c.verify(s, u.data)], at)


def _newest(sigs: list[Sig], at: int) -> Sig | None:
    current = [s for s in sigs if s.live(at)]
    return max(current, key=lambda s: s.created) if current else None


def _expires(c: LeanCert, uids: list[_Uid], direct: list[Sig], at: int) -> int | None:
    """``Cert.expires_at``: key expiration of the primary User ID's self-signature, else direct-key."""
    if not any(s.key_exp for u in uids for s in _parse(c, u).cands) and not any(s.key_exp for s in direct):
        return None  # no signature could say otherwise: skip verifying other User IDs
    newest_direct = _newest(direct, at)
    best: tuple[tuple[bool, int], Sig] | None = None
    for u in uids:
        sig = _self_sig(c, u, at)
        if sig is not None and not _uid_revoked(c, u, at):
            rank = (sig.primary, sig.created)
            if best is None or rank > best[0]:
                best = (rank, sig)
    for sig in (best[1] if best else newest_direct, newest_direct):
        if sig is not None and sig.key_exp is not None:
            return c.created + sig.key_exp if sig.key_exp else None
    return None


def _subkeys(c: LeanCert, at: int) -> list[bytes]:
    """Packets of the subkeys valid at ``at`` with their newest binding."""
    out = []
    plain = _native.kernel("wkdsel").key_plain
    for body, raw, fields in c.subkeys:
        if body[:1] != b"\x04":
            raise Unusual("subkey version")
        try:
            if not plain(body):  # the common shapes are checked in the kernel; others in full
                PublicKey.read(BodyReader(body, what="public subkey"), True)
        except UnsupportedError:
            continue  # the reference skips a subkey of an unknown algorithm
        except MalformedPacket as exc:
            raise Unusual("malformed subkey") from exc
        created = int.from_bytes(body[1:5], "big")
        sigs = c.sigs(raw, fields)
        data = binding_suffix(body)
        if len(sigs) == 1:  # the common case, without the sorting
            bindings = sigs if sigs[0].type == _BINDING else []
        else:
            bindings = sorted((s for s in sigs if s.type == _BINDING), key=_newest_first)
        binding = None
        for s in bindings:
            if s.live(at) and c.verify(s, data):
                binding = s
                break
        if binding is None or not live(created, binding.key_exp, at):
            continue
        if len(sigs) > 1 and revoked_at([s for s in sigs if s.type == _SUB_REV and c.verify(s, data)], at):
            continue  # (a single signature is the binding: nothing revokes)
        out += [packet(14, body), packet(2, binding.body)]
    return out


def _uid_problem(c: LeanCert, u: _Uid, at: int) -> str | None:
    if _self_sig(c, u, at) is None:
        if any(c.verify(s, u.data) for s in u.cands):
            return "self-signature expired or not yet valid"
        return "no valid self-signature"
    return "user id revoked" if _uid_revoked(c, u, at) else None


def select_lean(
    c: LeanCert,
    domains: frozenset[str] | None,
    include_expired: bool,
    include_revoked: bool,
    now: int,
    skipped: list[tuple[str, str]],
) -> list[Chosen]:
    """The addresses of ``c`` to publish (reasons for the others appended to ``skipped``)."""
    got = select_plain(c, domains, now, skipped)
    if got is None:
        got = select_general(c, domains, include_expired, include_revoked, now, skipped)
    return got


def select_plain(
    c: LeanCert, domains: frozenset[str] | None, now: int, skipped: list[tuple[str, str]]
) -> list[Chosen] | None:
    """:func:`select_general` for the common shape, in one pass: no direct-key signature or key
    revocation, one signature on each User ID, no key expiration on a self-signature (subkeys as
    :func:`_subkeys` takes them). None (nothing verified, nothing appended) for any other certificate.

    With that shape nothing expires the key and nothing revokes a User ID (its one signature is its
    self-signature), so the expired / revoked flags cannot change the outcome: a User ID is published
    when its self-signature is live now and verifies."""
    if c.other:
        return None
    created = c.created
    sigs: list[Sig | None] = []  # each User ID's self-signature (None: its one signature is not one)
    for _, raw, fields in c.uids:
        if len(raw) != 1:
            return None
        f = fields[0]
        if f is None:
            return None  # malformed: the general path says so
        if 0x10 <= f[0] <= 0x13 and f[4] >= created:  # type, creation: as :func:`_parse`
            if f[6]:  # a key expiration
                return None
            sigs.append(Sig(raw[0], f))
        else:
            sigs.append(None)
    key_problem = "key created in the future" if created > now else None
    best: dict[str, tuple[tuple[int, int], bytes, Sig, str, str]] = {}
    for (body, _, _), s in zip(c.uids, sigs, strict=True):
        where = _address(body, domains, skipped)
        if where is None:
            continue
        local, domain, address = where
        problem = key_problem
        if problem is None:
            if s is None or not c.verify(s, certification_suffix(body)):
                problem = "no valid self-signature"
            elif not s.live(now):
                problem = "self-signature expired or not yet valid"
        if problem:
            skipped.append((problem, address))
            continue
        assert s is not None
        rank = (int(bool(s.primary)), s.created)
        if address not in best or rank > best[address][0]:
            best[address] = (rank, body, s, local, domain)
    if not best:
        return []
    subs = b"".join(_subkeys(c, now))
    key = c.key_packet
    return [
        Chosen(local, domain, address, b"".join((key, packet(13, body), packet(2, s.body), subs)), "valid")
        for address, (_, body, s, local, domain) in best.items()
    ]


FastResult = tuple[list[tuple[str, str, str, bytes, str]], str, int, list[tuple[str, str]], float, float]


class Prepared:
    """A certificate of the common shape as the kernel's ``plain_cert`` returns it (:func:`prepare_fast`),
    with the Ed25519 checks its selection may ask for (``checks``; None: verified on demand) and, once
    :func:`verify_prepared` ran, their verdicts and a share of its time."""

    __slots__ = (
        "checks",
        "created",
        "fpr",
        "key",
        "key_packet",
        "parse",
        "spent",
        "subkeys",
        "uids",
        "verdicts",
    )

    def __init__(self, got: tuple, parse: float, checks: list[bytes] | None) -> None:
        self.fpr, self.created, self.key, self.key_packet, self.uids, self.subkeys = got
        self.parse = parse  # seconds in the kernel
        self.checks = checks
        self.verdicts: dict[bytes, bool] = {}
        self.spent = 0.0  # seconds verifying, before :func:`finish_fast`


def select_fast(data: bytes, domains: frozenset[str] | None, now: int) -> FastResult | None:
    """:func:`select_plain` of certificate ``data`` from the kernel's ``plain_cert``: ``(chosen, fingerprint
    hex, key creation, reasons for the addresses left out, seconds in the kernel, seconds verifying)``; None
    for a certificate of another shape, or Ed25519 without libsodium (the caller takes :class:`LeanCert`).

    The kernel has done everything but the public-key operations; Python verifies what decides (an
    Ed25519 key's signatures at once with the native ``ed25519`` kernel: :func:`verify_prepared`; a whole
    batch of certificates shares one such call when the caller runs the three steps itself)."""
    prepared = prepare_fast(data, domains, now)
    if prepared is None:
        return None
    verify_prepared([prepared])
    return finish_fast(prepared, domains, now)


def prepare_fast(data: bytes, domains: frozenset[str] | None, now: int) -> Prepared | None:
    """The first step of :func:`select_fast`: the kernel's ``plain_cert`` and the Ed25519 checks to verify
    (:func:`_ed25519_checks`); None as there."""
    kernel = _native.kernel("wkdsel")
    t0 = _clock()
    got = kernel.plain_cert(data, _KNOWN_MASK)
    parse = _clock() - t0
    if got is None:
        return None
    _, created, key, _, uids, subkeys = got
    checks = None
    if type(key) is bytes:
        if _lean._sodium_open is None:
            return None
        if _native.kernel("ed25519").features()["native"]:
            checks = _ed25519_checks(uids, subkeys, domains, created > now, now)
        # else: the twin is ~40x slower than libsodium: one signature at a time, as the reference does
    return Prepared(got, parse, checks)


def verify_prepared(batch: list[Prepared]) -> None:
    """The verdicts of every Ed25519 check of ``batch`` from one call of the native kernel's
    ``verify_many`` (each verdict that of ``verify_one``), its time shared by their numbers of checks."""
    items = [(p.key, check) for p in batch if p.checks for check in p.checks]
    if not items:
        return
    t = _clock()
    verdicts = _native.kernel("ed25519").verify_many(items)
    share = (_clock() - t) / len(items)
    at = 0
    for p in batch:
        if p.checks:
            count = len(p.checks)
            p.verdicts = dict(zip(p.checks, verdicts[at : at + count], strict=True))
            p.spent += share * count
            at += count


def finish_fast(p: Prepared, domains: frozenset[str] | None, now: int) -> FastResult:
    """The last step of :func:`select_fast`: the decisions, with the verdicts :func:`verify_prepared` left."""
    if type(p.key) is not bytes:
        verify = _native.kernel("wkdsel").rsa_verify
    elif p.checks is None:
        verify = _lean._sodium_ok
    else:
        verify = _Ed25519Verdicts(p.verdicts).verify
    fpr, created, key = p.fpr, p.created, p.key
    spent = p.spent
    left: list[tuple[str, str]] = []
    key_problem = "key created in the future" if created > now else None
    best: dict[str, tuple[tuple[int, int], bytes, tuple[str, str, str]]] = {}
    for where, body, check, sig_created, expires, primary, packets in p.uids:
        if where is None:
            where = _address(body, domains, left)  # not plain ASCII, or no address: the full rules
            if where is None:
                continue
        elif domains is not None and where[1] not in domains:
            left.append(("other domain", where[2]))
            continue
        problem = key_problem
        if problem is None:
            ok = False
            if check is not None:
                t = _clock()
                ok = verify(check, key)
                spent += _clock() - t
            if not ok:
                problem = "no valid self-signature"
            elif not live(sig_created, expires, now):
                problem = "self-signature expired or not yet valid"
        if problem:
            left.append((problem, where[2]))
            continue
        rank = (int(primary), sig_created)
        if where[2] not in best or rank > best[where[2]][0]:
            best[where[2]] = (rank, packets, where)
    if not best:
        return [], fpr, created, left, p.parse, spent
    subs = []
    for check, sub_created, sig_created, expires, key_exp, packets in p.subkeys:
        if check is None or not live(sig_created, expires, now) or not live(sub_created, key_exp, now):
            continue  # no binding live now, or the subkey not valid (the order of these checks is free)
        t = _clock()
        ok = verify(check, key)
        spent += _clock() - t
        if ok:
            subs.append(packets)
    tail = b"".join(subs)
    chosen = [
        (local, domain, address, p.key_packet + packets + tail, "valid")
        for address, (_, packets, (local, domain, _)) in best.items()
    ]  # the fields of :class:`Chosen`, without its constructor
    return chosen, fpr, created, left, p.parse, spent


def _ed25519_checks(
    uids: list[tuple],
    subkeys: list[tuple],
    domains: frozenset[str] | None,
    future: bool,
    now: int,
) -> list[bytes]:
    """The checks (signature || digest) :func:`finish_fast` may ask of an Ed25519 key: those of the User IDs
    that reach the check, then of the subkey bindings live now (the same conditions as there)."""
    if future:
        return []  # no User ID reaches the check
    checks = []  # (plain loops: this runs for every key of a build)
    for where, body, check, _, _, _, _ in uids:
        if check is not None and _considered(where, body, domains):
            checks.append(check)
    if checks:  # the subkeys are checked only when a User ID is published: optimistically in the batch
        for check, sub_created, sig_created, expires, key_exp, _ in subkeys:
            if check is not None and live(sig_created, expires, now) and live(sub_created, key_exp, now):
                checks.append(check)
    return checks


def _considered(where: tuple[str, str, str] | None, body: bytes, domains: frozenset[str] | None) -> bool:
    """Does :func:`finish_fast` consider the User ID (address ``where`` from the kernel, else ``body``)?"""
    if where is None:
        return _address(body, domains, []) is not None
    return domains is None or where[1] in domains


class _Ed25519Verdicts:
    """Ed25519 verdicts for one key's signatures: those :func:`verify_prepared` found, else (a check not
    among them) the kernel's ``verify_one``; each verdict is ``verify_one``'s, so none depends on another
    signature (the kernel ``ed25519``: RFC 8032's cofactored equation with libsodium's pre-checks)."""

    __slots__ = ("verdicts",)

    def __init__(self, verdicts: dict[bytes, bool]) -> None:
        self.verdicts = verdicts

    def verify(self, check: bytes, key: bytes) -> bool:
        """Is ``check`` a valid signature by ``key`` (the key the verdicts are for)?"""
        got = self.verdicts.get(check)
        return _native.kernel("ed25519").verify_one(key, check) if got is None else got


def _address(
    body: bytes, domains: frozenset[str] | None, skipped: list[tuple[str, str]]
) -> tuple[str, str, str] | None:
    """``(local, domain, address)`` of a User ID to consider; None (the reason appended) otherwise."""
    m = _ANGLE.search(body) or _BARE.match(body)  # ``UserID(body).email`` without the object
    email = m.group(1).decode("utf-8", "replace") if m else None
    if email is None:
        skipped.append(("no mail address in user id", body.decode("utf-8", "replace")[:80]))
        return None
    try:
        local, domain, address = normalize_address(email)
    except InvalidArgument as exc:
        skipped.append((f"refused address: {exc}", repr(email[:200])))
        return None
    if domains is not None and domain not in domains:
        skipped.append(("other domain", address))
        return None
    return local, domain, address


def select_general(
    c: LeanCert,
    domains: frozenset[str] | None,
    include_expired: bool,
    include_revoked: bool,
    now: int,
    skipped: list[tuple[str, str]],
) -> list[Chosen]:
    """:func:`select_lean` for any certificate the lean path handles."""
    uids = [_Uid(b, raw, fields) for b, raw, fields in c.uids]
    direct: list[Sig] = []
    krevs: list[Sig] = []
    if c.other:
        direct = [s for s in c.other if s.type == _DIRECT and c.verify(s, b"")]
        krevs = [s for s in c.other if s.type == _KEY_REV and c.verify(s, b"")]
    key_revoked = bool(krevs) and revoked_at(krevs, now)
    exp = _expires(c, uids, direct, now)
    expired = exp is not None and exp <= now
    at = exp - 1 if expired and exp is not None else now
    key_problem = None
    if c.created > now:
        key_problem = "key created in the future"
    elif key_revoked and not include_revoked:
        key_problem = "key revoked"
    elif expired and not include_expired:
        key_problem = "key expired"
    best: dict[str, tuple[tuple[int, int], _Uid, str, str]] = {}
    for u in uids:
        where = _address(u.body, domains, skipped)
        if where is None:
            continue
        local, domain, address = where
        problem = key_problem or _uid_problem(c, u, at)
        if problem == "user id revoked" and include_revoked:
            problem = None
        if problem:
            skipped.append((problem, address))
            continue
        sig = _self_sig(c, u, at)
        rank = (int(bool(sig and sig.primary)), sig.created if sig else 0)
        if address not in best or rank > best[address][0]:
            best[address] = (rank, u, local, domain)
    if not best:
        return []
    head = [c.key_packet, *(packet(2, s.body) for s in krevs)]
    newest_direct = _newest(direct, at) if direct else None
    subs: list[bytes] | None = None
    out = []
    for address, (_, u, local, domain) in best.items():
        uid = packet(13, u.body)
        if key_revoked or _uid_revoked(c, u, at) or _self_sig(c, u, at) is None:
            valid = [s for s in u.cands if c.verify(s, u.data)]
            newest = max(valid, key=lambda s: s.created, default=None)
            block = [*head, uid, *([packet(2, newest.body)] if newest else [])]
            block += [packet(2, s.body) for s in u.revs if c.verify(s, u.data)]
            out.append(Chosen(local, domain, address, b"".join(block), "revoked"))
            continue
        if subs is None:
            subs = _subkeys(c, at)
        sig = _self_sig(c, u, at)
        assert sig is not None
        parts = [*head, *([packet(2, newest_direct.body)] if newest_direct else []), uid]
        parts += [packet(2, sig.body), *subs]
        out.append(Chosen(local, domain, address, b"".join(parts), "expired" if expired else "valid"))
    return out
