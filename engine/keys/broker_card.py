"""The owner process of one card (:mod:`engine.keys.broker`): it alone talks to the card, one operation
at a time, and decides what a failure means.

- **pin**: the PIN (or passphrase) was refused. Never retried: each try costs a card retry counter, and a
  card locks after three. :class:`PinGuard` also stops gpg-agent from asking again *within* one
  operation (with loopback it re-asks up to three times, which would spend all three tries at once).
- **transient**: the connection or the card hiccuped (Assuan timeout, agent or scdaemon restarted, card
  reset, PKCS#11 session or handle lost): retried after a backoff with the connection reopened, at most
  ``retries`` times; then the card counts as removed (**card**).
- **card**: this card cannot do it (gone, or holds no such key); the broker moves the work to another
  card holding the same key, if any.
- **decrypt** / **invalid** / **error**: about this one request (a bad ciphertext), not the card.

Runs in a process of its own so PKCS#11 sessions and agent sockets are never shared (CARDS.md: threads
with their own SoftHSM sessions crash, concurrent requests crash gnupg-pkcs11-scd).
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from engine.errors import DecryptionFailed, InvalidArgument, PgpBulkError, UnsupportedError
from engine.keys.errors import AssuanError, BadPassphrase, KeyProviderError, NoSecretKey
from engine.keys.providers import AgentDecryptor, Pkcs11Decryptor, RawDecryptor, RemoteKeyProvider
from engine.openpgp.public_key import PublicKey

#: libgpg-error codes worth another try: TIMEOUT, ASS_GENERAL/ASS_SERVER_FAULT-like (80, 81), CARD,
#: CARD_RESET, CARD_REMOVED, CARD_NOT_PRESENT, NO_SCDAEMON, SCDAEMON, EOF. A removed card is retried too:
#: one pulled and pushed back within the backoff comes back; after the retries it is declared gone.
_GENERAL = 1  # GPG_ERR_GENERAL
_SOURCE_SCD = 6  # GPG_ERR_SOURCE_SCD
TRANSIENT_CODES = frozenset({62, 80, 81, 108, 109, 110, 112, 119, 120, 16383})
_DECRYPTION_FAILED = 152
_PIN_CODES = frozenset({11, 87, 177, 178})  # BAD_PASSPHRASE, BAD_PIN, NO_PASSPHRASE, NO_PIN
#: Environment a card process needs from its parent (passed explicitly, whatever the start method).
CARD_ENV = ("GNUPGHOME", "SOFTHSM2_CONF", "PGPBULK_PKCS11_LOCK", "PGPBULK_PKCS11_MODULE")
_METHODS = {"rsa": "rsa_decrypt", "ecdh": "ecdh_shared"}
#: How much the owner process raises its scheduling priority, when it may (root / CAP_SYS_NICE).
OWNER_NICE = int(os.environ.get("PGPBULK_CARD_NICE", "5"))


@dataclass
class Card:
    """A card (or token, or agent) and the keys it holds; the decryptors must pickle (the agent and
    PKCS#11 ones do) because they are opened in the card's owner process."""

    name: str
    keys: list[tuple[PublicKey, RawDecryptor]]

    @classmethod
    def of(cls, name: str, provider: RemoteKeyProvider) -> Card:
        """The keys of ``agent_provider(...)`` / ``pkcs11_provider(...)``, as one card."""
        return cls(name, provider.entries)


@dataclass(frozen=True)
class CardMetrics:
    """Per-card counters. ``busy_fraction`` = time inside card operations / time from the first operation
    sent to the last answer: near 1 means the card never waited for the workers."""

    name: str
    ops: int
    errors: int
    retries: int
    busy_s: float
    active_s: float
    queue_high_water: int
    idle_gaps: int  # times the card finished and found nothing queued (besides the end of the run)
    pin_asks: int
    alive: bool
    reason: str = ""

    @property
    def busy_fraction(self) -> float:
        if self.ops == 0 or self.active_s <= 0:
            return 0.0
        return min(1.0, self.busy_s / self.active_s)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "busy_fraction": round(self.busy_fraction, 4)}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient failures: ``retries`` more tries, waiting ``backoff * 2**n`` (capped)."""

    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 2.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**attempt))


def classify(exc: BaseException) -> str:
    """What a failure of a card operation means: pin, transient, card, decrypt, invalid or error."""
    if isinstance(exc, BadPassphrase):
        return "pin"
    if isinstance(exc, NoSecretKey):
        return "card"
    if isinstance(exc, AssuanError):
        if exc.code in _PIN_CODES:
            return "pin"
        if exc.code in TRANSIENT_CODES or (exc.code == _GENERAL and exc.source == _SOURCE_SCD):
            return "transient"  # scdaemon's GPG_ERR_GENERAL: the card was pulled mid-command
        return "decrypt" if exc.code == _DECRYPTION_FAILED else "error"
    if isinstance(exc, DecryptionFailed):
        return "decrypt"
    if isinstance(exc, (InvalidArgument, UnsupportedError)):
        return "invalid"
    if isinstance(exc, (KeyProviderError, OSError)):  # Assuan timeouts and broken sockets, TokenError
        return "transient"
    return "error"


class PinGuard:
    """A passphrase source that answers at most one PIN inquiry per operation attempt; a second inquiry
    means the PIN just given was refused, so it cancels (the agent then fails with a bad-PIN error)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.asks = 0  # in the current attempt
        self.total = 0

    def reset(self) -> None:
        self.asks = 0

    def __call__(self, keygrip: str) -> str | bytes | None:
        self.asks += 1
        if self.asks > 1:
            return None
        self.total += 1
        src = self.source
        return src(keygrip) if callable(src) else src  # type: ignore[no-any-return]


def guard_pins(raws: list[Any]) -> list[PinGuard]:
    """Put a :class:`PinGuard` in front of every gpg-agent connection among ``raws`` (once each)."""
    guards: dict[int, PinGuard] = {}
    for raw in map(backend, raws):
        if isinstance(raw, AgentDecryptor) and id(raw.agent) not in guards:
            guard = PinGuard(raw.agent.passphrase)  # this process owns the connection object
            raw.agent.passphrase = guard
            guards[id(raw.agent)] = guard
    return list(guards.values())


def backend(raw: Any) -> Any:
    """The real backend under wrappers that model a card (``inner``, see :mod:`engine.keys.simulated`)."""
    while hasattr(raw, "inner"):
        raw = raw.inner
    return raw


def reopen(raw: Any) -> None:
    """Drop a backend's connection or session so the next try starts afresh."""
    raw = backend(raw)
    if isinstance(raw, AgentDecryptor):
        raw.agent.close()  # the next call reconnects (and starts the agent again if it died)
    elif isinstance(raw, Pkcs11Decryptor):
        from engine.keys.pkcs11 import close_all

        close_all()  # this process serves one card: finalize the library, log in again on next use
        raw.key = copy.copy(raw.key)  # Pkcs11Key.__getstate__ leaves the copy without a session


def probe(raw: Any) -> bool:
    """Whether the card behind an agent still answers (``SCD SERIALNO``, which spends no PIN try): after
    a card error that outlived the retries, tells a bad request (the card answers) from a lost card."""
    raw = backend(raw)
    if not isinstance(raw, AgentDecryptor):
        return False
    try:
        raw.agent.transact("SCD SERIALNO")
    except PgpBulkError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class CardOwner:
    """One card's keys (fingerprint -> ``RawDecryptor``) and how to run an operation on them."""

    def __init__(self, name: str, raws: dict[bytes, Any], policy: RetryPolicy) -> None:
        self.name, self.raws, self.policy = name, raws, policy
        self.guards = guard_pins(list(raws.values()))

    @property
    def pin_asks(self) -> int:
        return sum(g.total for g in self.guards)

    def run(self, fingerprint: bytes, op: str, args: tuple[bytes, ...]) -> tuple[str, Any, float, int]:
        """``(status, value, seconds in the card, retries)``; status "ok" (value: bytes) or "err" (value:
        (kind, message))."""
        raw = self.raws.get(fingerprint)
        method = _METHODS.get(op)
        if raw is None or method is None:
            return (
                "err",
                ("invalid", f"card {self.name}: no key {fingerprint.hex()} / operation {op!r}"),
                0.0,
                0,
            )
        fn: Callable[..., bytes] = getattr(raw, method)
        busy = 0.0
        last: BaseException | None = None
        for attempt in range(self.policy.retries + 1):
            if attempt:
                time.sleep(self.policy.delay(attempt - 1))
                reopen(raw)
            for guard in self.guards:
                guard.reset()
            t0 = time.perf_counter()
            try:
                value = fn(*args)
            except Exception as exc:
                busy += time.perf_counter() - t0
                kind = classify(exc)
                if kind != "transient":
                    return "err", (kind, self._message(kind, exc)), busy, attempt
                last = exc
                continue
            return "ok", bytes(value), busy + time.perf_counter() - t0, attempt
        assert last is not None
        tries = self.policy.retries + 1
        if isinstance(last, AssuanError) and probe(raw):  # the card answers: this request is the problem
            return (
                "err",
                ("decrypt", f"card {self.name}: {_describe(last)} on this request, {tries} tries"),
                busy,
                tries - 1,
            )
        reason = (
            f"card {self.name}: {_describe(last)}; gave up after {tries} tries (removed or not answering)"
        )
        return "err", ("card", reason), busy, self.policy.retries

    def _message(self, kind: str, exc: BaseException) -> str:
        if kind == "pin":
            return (
                f"card {self.name}: PIN refused ({exc}); stopped without retrying so the card does not lock"
            )
        if kind == "decrypt":
            return "decryption failed"
        return f"card {self.name}: {_describe(exc)}"


def card_main(
    conn: Connection,
    name: str,
    raws: dict[bytes, Any],
    policy: RetryPolicy,
    env: dict[str, str],
    forked: Sequence[Connection] = (),
) -> None:
    """Entry point of a card process: ``("ready", pid)``, then one reply per request until ``None``.

    ``forked``: started by ``fork`` (:func:`engine.keys.broker_state.owner_context`), with the parent's
    ends of the card pipes to close (so this process sees EOF when the parent dies); the keys are then
    rebuilt from their pickled form, exactly as a spawned owner receives them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about Ctrl-C
    with contextlib.suppress(OSError):  # first in line for a CPU when the card answers (where allowed):
        os.nice(-OWNER_NICE)  # the workers keep every core busy, and the card must never wait for them
    if forked:
        for end in forked:
            with contextlib.suppress(OSError):
                end.close()
        raws = pickle.loads(pickle.dumps(raws))
    os.environ.update(env)
    try:
        owner = CardOwner(name, raws, policy)
    except PgpBulkError as exc:
        conn.send(("failed", classify(exc), f"card {name}: {_describe(exc)}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        gid, fingerprint, op, args = msg
        status, value, busy, retries = owner.run(fingerprint, op, args)
        conn.send((gid, status, value, busy, retries, owner.pin_asks))
