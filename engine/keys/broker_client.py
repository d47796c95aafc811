"""The worker side of the card broker: a picklable ``KeyProvider`` whose private-key steps run on a card
owned by the broker (:mod:`engine.keys.broker`).

Only the secret step crosses the process boundary: an RSA ciphertext (at most 512 bytes) or an ECDH
ephemeral point and wrapped key go out, the unpadded frame or the shared secret comes back. Parsing,
the RFC 6637 KDF and key unwrap stay in the worker (:func:`engine.keys.providers.decrypt_pkesk`).

Wire format (pickled tuples over :mod:`multiprocessing.connection`, one Unix socket per worker process):
request ``(rid, fingerprint, op, args)`` with ``op`` "rsa" (``args = (c,)``) or "ecdh" (``(point,
wrapped)``); reply ``(rid, "ok", value)`` or ``(rid, "err", (kind, message))``. ``("prime", [(fingerprint,
op, args), ...])`` queues operations without a reply: the broker holds each answer until some worker
asks for the same operation (the parent primes the card while the workers start).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection
from typing import Any

from engine.errors import DecryptionFailed, InvalidArgument, NoMatchingKey, PgpBulkError
from engine.keys.errors import BadPassphrase, KeyProviderError, ProviderStopped
from engine.keys.providers import RemoteKeyProvider, decrypt_pkesk
from engine.openpgp.pkesk import Pkesk, SessionKey
from engine.openpgp.public_key import PublicKey

#: Requests one worker keeps outstanding at most; bounds the bytes queued in each socket direction, so
#: neither side can block the other on a full buffer.
DEFAULT_WINDOW = 64


class CardUnavailable(ProviderStopped):
    """No card holding the key can do the operation: removed, not answering, or gave up after retries."""


class BrokerClosed(ProviderStopped):
    """The broker stopped (or its process went away) before answering."""


#: Error kinds on the wire -> what the worker raises. "pin" and "card" end the run; the others concern
#: one request only.
_ERRORS: dict[str, type[PgpBulkError]] = {
    "pin": BadPassphrase,
    "card": CardUnavailable,
    "closed": BrokerClosed,
    "decrypt": DecryptionFailed,
    "invalid": InvalidArgument,
    "nokey": NoMatchingKey,
}


def error_from_wire(kind: str, message: str) -> PgpBulkError:
    """The exception a reply ``("err", (kind, message))`` stands for."""
    if kind == "decrypt":
        return DecryptionFailed("decryption failed")  # oracle resistance: no details, whatever the card said
    return _ERRORS.get(kind, KeyProviderError)(message)


class BrokerClient:
    """One worker process's connection to the broker; reconnects after a fork or unpickling.

    Thread-safe (one lock around the connection). ``submit`` returns at once while fewer than ``window``
    requests are outstanding, so a worker can queue many operations ahead and collect them later."""

    def __init__(self, address: str, authkey: bytes, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise InvalidArgument("window must be >= 1")
        self.address, self.window = address, window
        self._authkey = authkey
        self._setup()

    def _setup(self) -> None:
        self._conn: Connection | None = None
        self._pid = -1
        self._next = 0
        self._outstanding: set[int] = set()
        self._done: dict[int, tuple[str, Any]] = {}
        self._forgotten: set[int] = set()
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {"address": self.address, "window": self.window, "_authkey": self._authkey}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def _connection(self) -> Connection:
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = None, os.getpid()  # an inherited socket is the parent's: never use it
            self._outstanding.clear()
            self._done.clear()
            self._forgotten.clear()
            try:
                self._conn = Client(self.address, family="AF_UNIX", authkey=self._authkey)
            except (OSError, EOFError) as exc:
                raise BrokerClosed(f"card broker at {self.address} is not reachable: {exc}") from exc
        return self._conn

    def submit(self, fingerprint: bytes, op: str, args: tuple[bytes, ...]) -> int:
        """Queue one operation on the broker; returns its id for :meth:`result`."""
        with self._lock:
            conn = self._connection()
            while len(self._outstanding) - len(self._done) >= self.window:
                self._read_one(conn)
            rid = self._next
            self._next += 1
            try:
                conn.send((rid, fingerprint, op, args))
            except OSError as exc:
                self._conn = None
                raise BrokerClosed(f"card broker went away: {exc}") from exc
            self._outstanding.add(rid)
            return rid

    def prime(self, steps: Sequence[tuple[bytes, str, tuple[bytes, ...]]]) -> None:
        """Queue ``(fingerprint, op, args)`` operations whose answers the broker keeps for a later
        :meth:`submit` of the same operation (from any process); nothing comes back here."""
        if not steps:
            return
        with self._lock:
            try:
                self._connection().send(("prime", list(steps)))
            except OSError as exc:
                self._conn = None
                raise BrokerClosed(f"card broker went away: {exc}") from exc

    def forget(self, rid: int) -> None:
        """Drop request ``rid``: its answer is discarded when it comes (it still counts in the window)."""
        with self._lock:
            if self._done.pop(rid, None) is not None:
                self._outstanding.discard(rid)
            elif rid in self._outstanding:
                self._forgotten.add(rid)

    def result(self, rid: int) -> bytes:
        """The answer to request ``rid`` (blocks); the broker's error, re-raised typed, otherwise."""
        with self._lock:
            if rid not in self._outstanding:
                raise InvalidArgument(f"no outstanding broker request {rid}")
            while rid not in self._done:
                self._read_one(self._connection())
            self._outstanding.discard(rid)
            status, value = self._done.pop(rid)
        if status == "ok":
            return bytes(value)
        raise error_from_wire(*value)

    def call(self, fingerprint: bytes, op: str, args: tuple[bytes, ...]) -> bytes:
        """Submit one operation and wait for it."""
        return self.result(self.submit(fingerprint, op, args))

    def _read_one(self, conn: Connection) -> None:
        try:
            rid, status, value = conn.recv()
        except (EOFError, OSError) as exc:
            self._conn = None
            self._outstanding -= self._forgotten
            self._forgotten.clear()
            for pending in self._outstanding - set(self._done):
                self._done[pending] = ("err", ("closed", "card broker closed the connection"))
            if not self._outstanding:
                raise BrokerClosed("card broker closed the connection") from exc
            return
        if rid in self._forgotten:
            self._forgotten.discard(rid)
            self._outstanding.discard(rid)
            return
        self._done[rid] = (status, value)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class _BrokerRaw:
    """``RawDecryptor`` that forwards the secret step of one key to the broker."""

    def __init__(self, client: BrokerClient, fingerprint: bytes) -> None:
        self.client, self.fingerprint = client, fingerprint

    def rsa_decrypt(self, c: bytes) -> bytes:
        return self.client.call(self.fingerprint, "rsa", (c,))

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        return self.client.call(self.fingerprint, "ecdh", (point, wrapped))


class _Captured(Exception):
    """Raised by :class:`_Recorder` to carry the secret step a PKESK needs (never escapes this module)."""

    def __init__(self, op: str, args: tuple[bytes, ...]) -> None:
        super().__init__(op)
        self.op, self.args = op, args


class _Recorder:
    """First pass of a pipelined batch: validate the PKESK, capture its secret step, do nothing."""

    def rsa_decrypt(self, c: bytes) -> bytes:
        raise _Captured("rsa", (c,))

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        raise _Captured("ecdh", (point, wrapped))


class _Replay:
    """Second pass: hand back the answer the card gave."""

    def __init__(self, value: bytes) -> None:
        self.value = value

    def rsa_decrypt(self, c: bytes) -> bytes:
        return self.value

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        return self.value


def _identity(pkesk: Pkesk) -> tuple[Any, ...]:
    fields = tuple(None if f is None else bytes(f) for f in pkesk.fields)
    return (pkesk.version, int(pkesk.algorithm), bytes(pkesk.key_id), pkesk.fingerprint, fields)


class BrokeredKeyProvider:
    """``KeyProvider`` for worker processes: the keys' public halves here, their secret steps on the
    broker's cards. Picklable (address, authkey and public keys); connects on first use in each process.

    Made by :meth:`engine.keys.broker.CardBroker.provider`."""

    def __init__(
        self, address: str, authkey: bytes, publics: Sequence[PublicKey], window: int = DEFAULT_WINDOW
    ) -> None:
        self._args = (address, authkey, list(publics), window)
        self.client = BrokerClient(address, authkey, window)
        self.publics = list(publics)
        self._inner = RemoteKeyProvider(
            (pub, _BrokerRaw(self.client, pub.fingerprint)) for pub in self.publics
        )
        self._ready: dict[tuple[Any, ...], SessionKey | PgpBulkError | tuple[PublicKey, int]] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (BrokeredKeyProvider, self._args)

    def key_ids(self) -> frozenset[bytes]:
        return self._inner.key_ids()

    def fingerprints(self) -> frozenset[bytes]:
        return self._inner.fingerprints()

    def decrypt_session_key(self, pkesk: Pkesk) -> SessionKey:
        """One PKESK: the answer :meth:`prefetch` queued for it (waiting for it if need be), else one
        round trip to the card."""
        ready = self._ready.pop(_identity(pkesk), None)
        if ready is None:
            return self._inner.decrypt_session_key(pkesk)
        if isinstance(ready, PgpBulkError):
            raise ready
        if isinstance(ready, tuple):
            public, rid = ready
            return decrypt_pkesk(pkesk, public, _Replay(self.client.result(rid)))
        return ready

    def prefetch(self, pkesks: Sequence[Pkesk]) -> None:
        """Queue the card operations of ``pkesks`` at once (up to the window) and keep their request ids
        for the next :meth:`decrypt_session_key` calls, which each wait for their own answer only: a
        worker handles a message as soon as its answer is back, while the card works on the next ones.
        Forgets an earlier prefetch. A worker calls it with the PKESKs of its whole batch."""
        for ready in self._ready.values():
            if isinstance(ready, tuple):
                self.client.forget(ready[1])
        self._ready.clear()
        for pkesk, step in self._steps(pkesks):
            ident = _identity(pkesk)
            if ident in self._ready:
                continue
            if isinstance(step, PgpBulkError):
                self._ready[ident] = step
            else:
                public, op, args = step
                self._ready[ident] = (public, self.client.submit(public.fingerprint, op, args))

    def prime(self, pkesks: Sequence[Pkesk]) -> None:
        """Queue the card operations of ``pkesks`` on the broker, which holds their answers for whichever
        worker later asks for the same operations (:meth:`prefetch`). For the parent of a run: the card
        starts while the workers are still starting."""
        steps = [step for _, step in self._steps(pkesks) if not isinstance(step, PgpBulkError)]
        self.client.prime([(public.fingerprint, op, args) for public, op, args in steps])

    def _steps(
        self, pkesks: Sequence[Pkesk]
    ) -> list[tuple[Pkesk, tuple[PublicKey, str, tuple[bytes, ...]] | PgpBulkError]]:
        """The card step of each of our PKESKs with one candidate key (or why it has none)."""
        out: list[tuple[Pkesk, tuple[PublicKey, str, tuple[bytes, ...]] | PgpBulkError]] = []
        ids = self.key_ids()
        for pkesk in pkesks:
            public = None if pkesk.anonymous or pkesk.key_id not in ids else self._single_candidate(pkesk)
            if public is None:
                continue
            try:
                decrypt_pkesk(pkesk, public, _Recorder())
            except _Captured as step:
                out.append((pkesk, (public, step.op, step.args)))
            except PgpBulkError as exc:
                out.append((pkesk, exc))
        return out

    def decrypt_session_keys(self, pkesks: Sequence[Pkesk]) -> list[SessionKey | PgpBulkError]:
        """Many PKESKs with their card operations queued ahead all at once (up to the window), so the
        card works through them back to back. Each slot holds the session key or that PKESK's error."""
        out: list[SessionKey | PgpBulkError | None] = [None] * len(pkesks)
        pending: list[tuple[int, PublicKey, int]] = []
        for i, pkesk in enumerate(pkesks):
            public = self._single_candidate(pkesk)
            if public is None:  # anonymous or ambiguous: the sequential path tries every candidate
                out[i] = self._safely(pkesk)
                continue
            try:
                decrypt_pkesk(pkesk, public, _Recorder())
            except _Captured as step:
                pending.append((i, public, self.client.submit(public.fingerprint, step.op, step.args)))
            except PgpBulkError as exc:
                out[i] = exc
        for i, public, rid in pending:
            try:
                out[i] = decrypt_pkesk(pkesks[i], public, _Replay(self.client.result(rid)))
            except PgpBulkError as exc:
                out[i] = exc
        return out  # type: ignore[return-value]

    def _single_candidate(self, pkesk: Pkesk) -> PublicKey | None:
        if pkesk.anonymous:
            return None
        found = [p for p in self.publics if p.key_id == pkesk.key_id]
        if pkesk.fingerprint is not None:
            found = [p for p in found if p.fingerprint == pkesk.fingerprint]
        return found[0] if len(found) == 1 else None

    def _safely(self, pkesk: Pkesk) -> SessionKey | PgpBulkError:
        try:
            return self._inner.decrypt_session_key(pkesk)
        except PgpBulkError as exc:
            return exc

    def close(self) -> None:
        self.client.close()
