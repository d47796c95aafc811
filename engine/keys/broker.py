"""The card broker: one owner per card, fed by every worker process, so a card is never asked two things
at once and never waits for parsing or writing.

Process model. Each card gets an owner **process** (:mod:`engine.keys.broker_card`) that holds its agent
connection or PKCS#11 session and runs one operation at a time. The broker itself is one event-loop
**thread** in the parent: workers connect to it over a Unix socket (:mod:`multiprocessing.connection`,
with an authentication key), it keeps one FIFO per card, hands each owner the next operation (two in
flight, so the next one is already in the pipe when the card finishes), sends answers back by request id,
and watches the clock. Why not ``multiprocessing.Queue``: a queue can only reach a pool worker by
inheritance, while an address and key pickle into any task on any executor. Why not a
``multiprocessing.managers`` proxy: one blocking call per connection, so a worker could not queue many
operations ahead; here a worker pipelines up to its window (:class:`BrokeredKeyProvider`).

Failures: a wrong PIN stops everything at once (no retry, see ``broker_card``); every waiting and later
request gets that error. A card that gives up after its retries, whose process dies, or that does not
answer within ``op_timeout`` is dropped; its work moves to the other cards holding the same key (the least
loaded first), or fails with a message naming the card and the reason when none is left.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection, Listener, wait
from typing import Any

from engine.errors import InvalidArgument
from engine.keys.broker_card import CARD_ENV, Card, CardMetrics, RetryPolicy, card_main
from engine.keys.broker_client import DEFAULT_WINDOW, BrokeredKeyProvider, CardUnavailable, error_from_wire
from engine.keys.broker_state import CardState, PrimeCache, Request, owner_context
from engine.openpgp.public_key import PublicKey

log = logging.getLogger(__name__)

__all__ = ["BrokeredKeyProvider", "Card", "CardBroker", "CardMetrics", "CardUnavailable", "RetryPolicy"]


class CardBroker:
    """Serve the private-key operations of ``cards`` to worker processes; see the module docstring.

    ``retries``/``backoff``: transient card errors; ``op_timeout``: seconds one operation (with its
    retries) may take before the card counts as removed; ``start_timeout``: for the owner processes to
    come up. Use as a context manager, hand :meth:`provider` to the workers, read :meth:`metrics`."""

    def __init__(
        self,
        cards: Sequence[Card],
        *,
        retries: int = 3,
        backoff: float = 0.2,
        op_timeout: float = 60.0,
        start_timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if not cards or len({c.name for c in cards}) != len(cards):
            raise InvalidArgument("a card broker needs at least one card, each with its own name")
        self._publics: dict[bytes, PublicKey] = {}
        for card in cards:
            if not card.keys:
                raise InvalidArgument(f"card {card.name} holds no keys")
            for pub, _ in card.keys:
                self._publics.setdefault(pub.fingerprint, pub)
        if retries < 0 or op_timeout <= 0:
            raise InvalidArgument("retries must be >= 0 and op_timeout > 0")
        self._specs = list(cards)
        self._policy = RetryPolicy(retries, backoff)
        self.op_timeout, self.start_timeout = op_timeout, start_timeout
        self._env = {k: os.environ[k] for k in CARD_ENV if k in os.environ} | (env or {})
        self._cards: list[CardState] = []
        self._clients: set[Connection] = set()
        self._new_clients: list[Connection] = []
        self._fatal: tuple[str, str] | None = None
        self._gid = itertools.count()
        self._lock = threading.Lock()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._dir = ""
        self.address = ""
        self._authkey = os.urandom(32)
        self.queue_high_water = 0
        self.primes = PrimeCache()

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> CardBroker:
        """Start the card processes (waiting until each has opened its card) and the broker thread."""
        ctx = owner_context()
        forked = ctx.get_start_method() == "fork"
        for spec in self._specs:
            parent, child = ctx.Pipe()
            raws = {pub.fingerprint: raw for pub, raw in spec.keys}
            close = [parent, *(c.conn for c in self._cards)] if forked else []
            args = (child, spec.name, raws, self._policy, self._env, close)
            proc = ctx.Process(target=card_main, args=args, name=f"pgpbulk-card-{spec.name}", daemon=True)
            proc.start()
            child.close()
            self._cards.append(CardState(spec.name, frozenset(raws), proc, parent))
        deadline = time.monotonic() + self.start_timeout
        for card in self._cards:
            self._await_ready(card, deadline)
        if self._fatal is not None:
            self._shutdown_cards()
            raise error_from_wire(*self._fatal)
        if not any(c.alive for c in self._cards):
            self._shutdown_cards()
            raise CardUnavailable("no card could be opened: " + "; ".join(c.reason for c in self._cards))
        self._dir = tempfile.mkdtemp(prefix="pgpbulk-broker-")
        self.address = os.path.join(self._dir, "broker")
        self._listener = Listener(self.address, "AF_UNIX", backlog=64, authkey=self._authkey)
        self._wake_r, self._wake_w = socket.socketpair()
        for target, name in ((self._accept_loop, "accept"), (self._loop, "loop")):
            t = threading.Thread(target=target, name=f"pgpbulk-broker-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _await_ready(self, card: CardState, deadline: float) -> None:
        try:
            if not card.conn.poll(max(0.0, deadline - time.monotonic())):
                card.proc.kill()
                raise TimeoutError(f"not ready within {self.start_timeout:g} s")
            msg = card.conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:
            card.proc.join(1)
            detail = str(exc) or f"exit code {card.proc.exitcode}"
            card.alive, card.reason = False, f"card {card.name}: owner process failed to start ({detail})"
            return
        if msg[0] != "ready":
            _, kind, message = msg
            card.alive, card.reason = False, message
            if kind == "pin":
                self._fatal = (kind, message)

    def provider(self, window: int = DEFAULT_WINDOW) -> BrokeredKeyProvider:
        """The picklable ``KeyProvider`` for workers (``window``: requests one worker queues ahead)."""
        if not self.address:
            raise InvalidArgument("start the broker first")
        return BrokeredKeyProvider(self.address, self._authkey, list(self._publics.values()), window)

    def close(self) -> None:
        """Answer every waiting request with "broker closed", stop the card processes, remove the socket."""
        if self._stopping:
            return
        self._stopping = True
        if self._threads:
            self._wake()
            with contextlib.suppress(OSError, EOFError, Exception):  # unblock accept()
                Client(self.address, "AF_UNIX", authkey=self._authkey).close()
            for t in self._threads:
                t.join(10)
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()
        else:
            self._shutdown_cards()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> CardBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metrics(self) -> list[CardMetrics]:
        """A snapshot of every card's counters (also after :meth:`close`)."""
        with self._lock:
            return [c.snapshot() for c in self._cards]

    # -- threads ------------------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn = self._listener.accept()
            except Exception:  # a client that failed authentication, or the listener closing
                continue
            if self._stopping:
                conn.close()
                return
            with self._lock:
                self._new_clients.append(conn)
            self._wake()

    def _loop(self) -> None:
        try:
            while not self._stopping:
                with self._lock:
                    cards = {c.conn: c for c in self._cards if c.alive}
                    waitables: list[Any] = [self._wake_r, *self._clients, *cards]
                    timeout = self._next_deadline()
                ready = wait(waitables, timeout)
                with self._lock:
                    for obj in ready:
                        if obj is self._wake_r:
                            self._wake_r.recv(4096)
                            self._clients.update(self._new_clients)
                            self._new_clients.clear()
                        elif obj in cards:
                            self._from_card(cards[obj])
                        elif obj in self._clients:
                            self._from_client(obj)
                    self._watchdog()
        except Exception:
            log.exception("card broker loop failed")
            self._fail_all("closed", "card broker failed (see the log)")
        finally:
            with self._lock:
                self._fail_all("closed", "card broker closed")
                for conn in self._clients | set(self._new_clients):
                    conn.close()
                self._clients.clear()
            self._shutdown_cards()

    def _next_deadline(self) -> float | None:
        heads = [c.head_since for c in self._cards if c.alive and c.inflight]
        if not heads:
            return None
        return max(0.0, min(heads) + self.op_timeout - time.monotonic())

    # -- requests -----------------------------------------------------------------------------------
    def _from_client(self, conn: Connection) -> None:
        try:
            msg = conn.recv()
            if msg[0] == "prime":  # ("prime", [(fingerprint, op, args), ...]): no reply, answers held
                primed = [Request(None, -1, f, op, tuple(args)) for f, op, args in msg[1]]
            else:
                rid, fingerprint, op, args = msg
                primed = None
        except (EOFError, OSError, ValueError, TypeError, IndexError):
            self._clients.discard(conn)  # worker gone: its queued requests are skipped in _pump
            conn.close()
            return
        if primed is not None:
            for req in primed:
                self.primes.add(req)
                self._route(req)
            return
        req = Request(conn, rid, fingerprint, op, tuple(args))
        taken, answer = self.primes.claim(req)
        if answer is not None:
            self._reply(req, *answer)
        elif not taken:
            self._route(req)

    def _route(self, req: Request) -> None:
        if self._fatal is not None:
            self._reply(req, "err", self._fatal)
            return
        cards = [c for c in self._cards if c.alive and req.fingerprint in c.fingerprints]
        if not cards:
            holders = [c for c in self._cards if req.fingerprint in c.fingerprints]
            if not holders:
                self._reply(req, "err", ("nokey", f"no card holds key {req.fingerprint.hex().upper()}"))
            else:
                reasons = "; ".join(c.reason for c in holders)
                msg = f"no card holding key {req.fingerprint.hex().upper()} is available: {reasons}"
                self._reply(req, "err", ("card", msg))
            return
        card = min(cards, key=lambda c: (c.load, c.ops))  # least outstanding, then least used
        card.queue.append(req)
        card.high_water = max(card.high_water, card.load)
        self.queue_high_water = max(self.queue_high_water, sum(c.load for c in self._cards))
        self._pump(card)

    def _pump(self, card: CardState) -> None:
        while card.alive and card.queue and len(card.inflight) < 2:
            req = card.queue.popleft()
            if req.client is not None and req.client not in self._clients:
                continue
            gid = next(self._gid)
            try:
                card.conn.send((gid, req.fingerprint, req.op, req.args))
            except OSError:
                card.queue.appendleft(req)
                self._card_failed(card, f"card {card.name}: owner process is gone")
                return
            now = time.monotonic()
            if not card.inflight:
                card.head_since = now
            if card.first_sent is None:
                card.first_sent = now
            card.inflight[gid] = req

    def _from_card(self, card: CardState) -> None:
        try:
            gid, status, value, busy, retries, pin_asks = card.conn.recv()
        except (EOFError, OSError):
            code = card.proc.exitcode
            self._card_failed(card, f"card {card.name}: owner process exited (code {code})")
            return
        now = time.monotonic()
        req = card.inflight.pop(gid)
        card.busy += busy
        card.retries += retries
        card.pin_asks = pin_asks
        card.last_done = now
        if retries:
            log.warning("card %s: operation succeeded or ended after %d retries", card.name, retries)
        if status == "ok":
            card.ops += 1
            self._reply(req, "ok", value)
        else:
            kind, message = value
            card.errors += 1
            if kind == "pin":
                log.warning("%s", message)  # raised to every caller; they decide how to say it
                self._reply(req, "err", value)
                self._fail_all(kind, message)
                return
            if kind == "card":
                self._card_failed(card, message, first=req)
                return
            log.info("%s", message)
            self._reply(req, "err", value)
        if card.inflight:
            card.head_since = now
        elif not card.queue:
            card.idle_gaps += 1
        self._pump(card)

    def _watchdog(self) -> None:
        now = time.monotonic()
        for card in self._cards:
            if card.alive and card.inflight and now - card.head_since > self.op_timeout:
                card.proc.kill()  # it may be stuck inside the module or on a socket
                self._card_failed(
                    card, f"card {card.name}: no answer within {self.op_timeout:g} s (removed or hung)"
                )

    def _card_failed(self, card: CardState, reason: str, first: Request | None = None) -> None:
        """Drop ``card``; its work goes to the other cards with the same key, or fails with ``reason``."""
        if not card.alive:
            return
        log.warning("%s", reason)
        card.alive, card.reason = False, reason
        orphans = ([first] if first else []) + list(card.inflight.values()) + list(card.queue)
        card.inflight.clear()
        card.queue.clear()
        with contextlib.suppress(OSError):
            card.conn.send(None)
        for req in orphans:
            self._route(req)

    def _fail_all(self, kind: str, message: str) -> None:
        """Stop serving: every queued and in-flight request, and every later one, gets this error."""
        if self._fatal is None:
            self._fatal = (kind, message)
        for card in self._cards:
            for req in [*card.inflight.values(), *card.queue]:
                self._reply(req, "err", self._fatal)
            card.inflight.clear()
            card.queue.clear()
            if card.alive:
                card.alive, card.reason = False, message
                with contextlib.suppress(OSError):
                    card.conn.send(None)

    def _reply(self, req: Request, status: str, value: Any) -> None:
        if req.client is None:  # a primed operation: to whoever waits for it, or held
            for waiter in self.primes.settle(req, status, value):
                self._reply(waiter, status, value)
            return
        if req.client not in self._clients:
            return
        try:
            req.client.send((req.rid, status, value))
        except OSError:
            self._clients.discard(req.client)

    def _shutdown_cards(self) -> None:
        for card in self._cards:
            with contextlib.suppress(OSError):
                card.conn.send(None)
        for card in self._cards:
            card.proc.join(5)
            if card.proc.is_alive():
                card.proc.kill()
                card.proc.join(5)
            card.conn.close()
