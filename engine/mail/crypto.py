"""Per-worker crypto state for the archive jobs: recipients resolved and key providers opened once.

A :class:`CryptoConfig` is small and picklable (certificate bytes, ``--key`` strings, a passphrase held in
memory only); :func:`init_worker` is the scheduler's per-process initializer: it parses the certificates,
selects their encryption subkeys and opens the key providers (a gpg-agent connection, a PKCS#11 session)
once per process. The payload functions below use that state and the in-process OpenPGP core.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from engine.armor import armor, dearmor
from engine.errors import IntegrityError, InvalidArgument, NoMatchingKey, PgpBulkError, UnusableKey
from engine.keys.errors import BadPassphrase, ProviderStopped
from engine.mail.malloc import keep_large_buffers
from engine.openpgp import message
from engine.openpgp.constants import SymmetricAlgorithm
from engine.openpgp.derive import full_randomness, pkesk_randomness
from engine.openpgp.keys import read_certs
from engine.openpgp.pkesk import Pkesk, Recipient, SessionKey
from engine.openpgp.provider import InProcessKeyProvider, KeyProvider
from engine.openpgp.secret_key import WrongPassphrase

#: Errors that concern the key provider, not the message: a run stops (resumably) on them instead of
#: copying every later message unchanged.
STOP_ERRORS = (BadPassphrase, ProviderStopped)
#: Their class names (and those of the broker's subclasses), as the pool reports a worker's exception.
STOP_KINDS = frozenset({"BadPassphrase", "ProviderStopped", "CardUnavailable", "BrokerClosed"})


@dataclass(frozen=True)
class KeyConfig:
    """``--key`` values, the GnuPG home for ``agent:``, the passphrase/PIN and ``--cert`` for ``pkcs11:``.

    ``cards``: more cards for the broker (``engine.keys.broker.Card``: library use, bench stand-ins);
    ``broker``: set by :func:`card_session` while a broker serves the card keys (workers use it)."""

    specs: tuple[str, ...]
    gnupghome: str | None = None
    passphrase: bytes | None = field(default=None, repr=False)
    certs: tuple[bytes, ...] = ()
    secret_keys: tuple[bytes, ...] = field(default=(), repr=False)  # in-memory keys (library use, demo)
    cards: tuple[Any, ...] = ()
    broker: Any = None


@dataclass(frozen=True)
class CryptoConfig:
    """What a worker needs: public certificates to encrypt to and/or keys to decrypt with."""

    recipients: tuple[bytes, ...] = ()
    keys: KeyConfig | None = None


class MultiProvider:
    """Several key providers as one: each PKESK goes to the first provider holding its key."""

    def __init__(self, providers: Sequence[KeyProvider]) -> None:
        self.providers = list(providers)

    def key_ids(self) -> frozenset[bytes]:
        return frozenset().union(*(p.key_ids() for p in self.providers))

    def fingerprints(self) -> frozenset[bytes]:
        return frozenset().union(*(p.fingerprints() for p in self.providers))

    def decrypt_session_key(self, pkesk: Pkesk) -> SessionKey:
        for provider in self.providers:
            try:
                return provider.decrypt_session_key(pkesk)
            except NoMatchingKey:
                continue
        raise NoMatchingKey("no secret key for this recipient")


def _file_provider(path: Path, passphrase: bytes | None) -> KeyProvider:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"--key {path}: {exc.strerror}") from None
    secrets = [c for c in read_certs(data, str(path)) if c.is_secret]
    if not secrets:
        raise InvalidArgument(f"--key {path}: no secret key in the file")
    try:
        return InProcessKeyProvider(secrets, passphrase)
    except WrongPassphrase:
        raise InvalidArgument(f"--key {path}: wrong passphrase") from None
    except UnusableKey as exc:
        hint = "; give --passphrase-file" if passphrase is None and "passphrase" in str(exc) else ""
        raise InvalidArgument(f"--key {path}: {exc}{hint}") from None


def needs_passphrase(specs: Sequence[str], gnupghome: str | None = None) -> bool:
    """True when a ``file:`` key among ``specs`` is passphrase-protected (so a prompt is worth it)."""
    from engine.keys.uri import FileKeySpec, parse_key_spec

    for text in specs:
        spec = parse_key_spec(text, gnupghome)
        if isinstance(spec, FileKeySpec) and spec.path.is_file():
            certs = read_certs(spec.path.read_bytes(), str(spec.path))
            if any(k.is_protected for c in certs for k in c.secret_keys()):
                return True
    return False


def open_provider(keys: KeyConfig) -> KeyProvider:
    """Open every ``--key`` (unlocking files, connecting to the agent, logging in to tokens)."""
    from engine.keys.uri import AgentKeySpec, FileKeySpec, parse_key_spec

    providers: list[KeyProvider] = [keys.broker] if keys.broker is not None else []
    for text in keys.specs:
        spec = parse_key_spec(text, keys.gnupghome)
        if isinstance(spec, FileKeySpec):
            providers.append(_file_provider(spec.path, keys.passphrase))
        elif isinstance(spec, AgentKeySpec):
            from engine.keys.errors import NoSecretKey
            from engine.keys.providers import agent_provider

            on_card = None if keys.broker is None else False  # with a broker: its keys are not ours
            try:
                providers.append(
                    agent_provider(spec.gnupghome, spec.fingerprint, keys.passphrase, on_card=on_card)
                )
            except NoSecretKey:
                if on_card is None:
                    raise
        elif keys.broker is not None:
            continue  # a token: served by the broker
        else:
            from engine.keys.providers import pkcs11_provider

            if not keys.certs:
                raise InvalidArgument(f"--key {spec}: a pkcs11: key needs its certificate (--cert FILE)")
            certs = [c for blob in keys.certs for c in read_certs(blob, "--cert")]
            pin = keys.passphrase.decode() if keys.passphrase is not None else None
            providers.append(pkcs11_provider(text, certs, pin=pin))
    if keys.secret_keys:
        certs = [c for blob in keys.secret_keys for c in read_certs(blob, "secret key")]
        providers.append(InProcessKeyProvider(certs, keys.passphrase))
    if not providers:
        raise InvalidArgument("at least one --key is needed")
    return providers[0] if len(providers) == 1 else MultiProvider(providers)


class CheckedEncrypt:
    """A payload encryption whose result can be checked in memory: it remembers the session key it
    chose (fresh for every message) and the binary message's hash, so that :meth:`open` decrypts the
    result without a key operation, after checking that every byte (the PKESKs too) is as it was made.

    ``derive_from`` (``reencrypt --mode full``): the new session key, the SEIPD prefix/salt and the
    PKESKs' random values are derived from that old session key and the payload
    (:mod:`engine.openpgp.derive`), so a repeated or resumed run writes the same bytes; without it all
    of them are fresh random."""

    def __init__(
        self, recipients: Sequence[Recipient], aead: bool, derive_from: SessionKey | None = None
    ) -> None:
        self.recipients, self.aead, self.derive_from = recipients, aead, derive_from
        self.session_key: SessionKey | None = None
        self._digest = b""

    def __call__(self, plaintext: bytes) -> bytes:
        cipher = SymmetricAlgorithm.AES256
        if self.derive_from is None:
            rand, pkesk_random = os.urandom, None
            sk = SessionKey(cipher, rand(cipher.key_size))
        else:
            rand = full_randomness(self.derive_from, self.recipients, plaintext)
            sk = SessionKey(cipher, rand(cipher.key_size))
            pkesk_random = pkesk_randomness(sk)
        binary = message.encrypt(
            plaintext,
            self.recipients,
            aead=self.aead,
            session_key=sk,
            random_bytes=rand,
            pkesk_random=pkesk_random,
        )
        self.session_key, self._digest = sk, hashlib.sha256(binary).digest()
        return armor(binary)

    def open(self, armored: bytes) -> bytes:
        """Decrypt what this made last, with its session key (the data packet in full: MDC or AEAD tags)."""
        if self.session_key is None:
            raise InvalidArgument("no session key to check with")
        return open_checked(armored, self.session_key, self._digest)

    def many(self, plaintexts: Sequence[bytes]) -> list[tuple[bytes, Callable[[bytes], bytes]]]:
        """Fresh-random :meth:`__call__` of each plaintext, their AES-CFB run side by side
        (:func:`message.encrypt_many`): ``(armored, open)`` per message, ``open`` as :meth:`open` for it."""
        if self.derive_from is not None:
            raise InvalidArgument("derived randomness is one message at a time")
        cipher = SymmetricAlgorithm.AES256
        keys = [SessionKey(cipher, os.urandom(cipher.key_size)) for _ in plaintexts]
        out = []
        for sk, binary in zip(keys, message.encrypt_many(plaintexts, self.recipients, aead=self.aead,
                                                         session_keys=keys), strict=True):  # fmt: skip
            digest = hashlib.sha256(binary).digest()
            out.append((armor(binary), partial(open_checked, session_key=sk, digest=digest)))
        return out


def open_checked(armored: bytes, session_key: SessionKey, digest: bytes) -> bytes:
    """The plaintext of ``armored`` decrypted with ``session_key``, after checking that its binary
    message hashes (SHA-256) to ``digest``: every byte, the PKESKs too, is as it was made."""
    binary = dearmor(armored).data
    if hashlib.sha256(binary).digest() != digest:
        raise IntegrityError("the message differs from the one encrypted")
    return message.decrypt(binary, session_key=session_key).plaintext


class WorkerState:
    """Recipients and key provider of one process, built once from a :class:`CryptoConfig`."""

    def __init__(self, config: CryptoConfig) -> None:
        self.config = config
        certs = [c for blob in config.recipients for c in read_certs(blob, "recipient")]
        self.recipients: list[Recipient] = message.resolve_recipients(certs)
        self.aead = bool(self.recipients) and all(r.seipd_v2 for r in self.recipients)
        self.provider: KeyProvider | None = open_provider(config.keys) if config.keys else None
        self.broker = config.keys.broker if config.keys else None
        self._checked = CheckedEncrypt(self.recipients, self.aead)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Armored message for the recipients (the encrypt payload function)."""
        return message.encrypt(plaintext, self.recipients, armor=True, aead=self.aead)

    def encrypt_many(self, plaintexts: Sequence[bytes]) -> list[bytes]:
        """:meth:`encrypt` of each plaintext, the messages encrypted side by side (one batch of mail)."""
        return message.encrypt_many(plaintexts, self.recipients, armor=True, aead=self.aead)

    def encrypt_checkable(self, plaintext: bytes) -> bytes:
        """Like :meth:`encrypt`, checkable in memory by :meth:`open_with_last_key` (:class:`CheckedEncrypt`)."""
        return self._checked(plaintext)

    def encrypt_many_checkable(self, plaintexts: Sequence[bytes]) -> list[tuple[bytes, Callable[[bytes], bytes]]]:
        """``(armored, open)`` for each plaintext: :meth:`encrypt_many` whose results ``open`` checks and
        decrypts in memory, as :meth:`open_with_last_key` does for :meth:`encrypt_checkable`."""
        return self._checked.many(plaintexts)

    def open_with_last_key(self, armored: bytes) -> bytes:
        """Decrypt what :meth:`encrypt_checkable` produced last with its session key, after checking that
        every byte is as it was made."""
        return self._checked.open(armored)

    def prefetch(self, raws: Sequence[bytes]) -> None:
        """With card keys: queue the card operations of a whole batch of messages at once (the first
        PKESK of each PGP/MIME message that a card key can open), so the card works through them back
        to back while this worker waits; the per-message calls then find their answers ready."""
        if self.broker is None:
            return
        from engine.mail.classify import MailClass, classify
        from engine.mail.pgpmime import armored_span

        ids = self.broker.key_ids()
        wanted: list[Pkesk] = []
        for raw in raws:
            try:
                if classify(raw) is not MailClass.PGP_MIME:
                    continue
                begin, end, _ = armored_span(raw)
                pkesks = message.parse_message(raw[begin:end]).pkesks
            except Exception:  # the per-message step reports what is wrong with it
                continue
            wanted += [p for p in pkesks if not p.anonymous and p.key_id in ids][:1]
        self.broker.prefetch(wanted)

    def decrypt(self, armored: bytes) -> bytes:
        """Plaintext of an armored message (the decrypt payload function)."""
        if self.provider is None:
            raise InvalidArgument("no --key to decrypt with")
        return message.decrypt(armored, self.provider).plaintext


_current: WorkerState | None = None


def init_worker(config: CryptoConfig) -> None:
    """Scheduler initializer: build this process's state (kept when the config is the same)."""
    global _current
    keep_large_buffers()
    if _current is None or _current.config != config:
        _current = WorkerState(config)


#: A pool worker's threshold for collecting the youngest generation (CPython's default is 700): a batch
#: keeps some 2,000 small containers (fields, plans, results) alive until it ends, and at 700 each batch
#: paid about three collections walking them (1-2% of a worker's CPU) that find no garbage; the batch's
#: objects are freed by reference counting when it ends. Cycles are still collected, only less often.
WORKER_GC_THRESHOLD = 10_000


def init_pool_worker(config: CryptoConfig) -> None:
    """The pool's initializer: :func:`init_worker`, then, in a worker process only (not a run on one
    worker, which runs in the caller's process), the garbage collector tuned for batches: what is alive
    after initialization (modules, keys) frozen out of every later collection, and
    :data:`WORKER_GC_THRESHOLD`."""
    init_worker(config)
    if multiprocessing.parent_process() is not None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])


def current() -> WorkerState:
    """This process's state (after :func:`init_worker`)."""
    if _current is None:
        raise InvalidArgument("crypto state not initialized in this process")
    return _current


def check_config(config: CryptoConfig) -> WorkerState:
    """Build the state in this process first, so bad keys fail early with one clear message."""
    try:
        init_worker(config)
    except PgpBulkError:
        raise
    except (OSError, ValueError) as exc:
        raise InvalidArgument(str(exc)) from None
    return current()


@contextmanager
def card_session(config: CryptoConfig) -> Iterator[tuple[CryptoConfig, Any]]:
    """Serve the card and token keys of ``config`` through one card broker for the time of a run.

    Yields the config the workers get (its ``keys.broker`` set: a picklable provider) and the broker (or
    None when no key is on a card, and the config unchanged). Opens the cards here, in the parent."""
    keys = config.keys
    if keys is None:
        yield config, None
        return
    from engine.keys.uri import AgentKeySpec, Pkcs11KeySpec, parse_key_spec

    kinds = [parse_key_spec(t, keys.gnupghome) for t in keys.specs]
    if not keys.cards and not any(isinstance(k, (AgentKeySpec, Pkcs11KeySpec)) for k in kinds):
        yield config, None
        return
    from engine.keys.broker import CardBroker
    from engine.keys.cardplan import plan_cards

    certs = [c for blob in keys.certs for c in read_certs(blob, "--cert")]
    card_specs = [
        t for t, k in zip(keys.specs, kinds, strict=True) if isinstance(k, (AgentKeySpec, Pkcs11KeySpec))
    ]
    plan = plan_cards(card_specs, keys.gnupghome, keys.passphrase, certs, keys.cards)
    if not plan.cards:
        yield config, None
        return
    with CardBroker(plan.cards) as broker:
        yield replace(config, keys=replace(keys, broker=broker.provider())), broker


def broker_report(broker: Any) -> dict[str, Any]:
    """The broker's counters for the JSON report: per card and the overall queue high water."""
    cards = [m.as_dict() for m in broker.metrics()]
    return {
        "cards": cards,
        "ops": sum(c["ops"] for c in cards),
        "retries": sum(c["retries"] for c in cards),
        "errors": sum(c["errors"] for c in cards),
        "queue_high_water": broker.queue_high_water,
    }


__all__ = [
    "STOP_ERRORS",
    "STOP_KINDS",
    "CryptoConfig",
    "KeyConfig",
    "MultiProvider",
    "WorkerState",
    "broker_report",
    "card_session",
    "check_config",
    "init_pool_worker",
    "init_worker",
    "needs_passphrase",
]
