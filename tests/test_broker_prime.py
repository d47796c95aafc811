"""Priming the card broker: operations queued by the parent before any worker asks, their answers held
until a worker asks for the same operation, one primed operation per request (soft key stand-in)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine.keys.broker import Card, CardBroker
from engine.keys.broker_state import PrimeCache, Request
from engine.keys.simulated import SoftRawDecryptor
from engine.mail.cardprime import card_pkesk
from engine.openpgp import message
from engine.openpgp.keygen import generate
from engine.openpgp.provider import InProcessKeyProvider


def _req(args: bytes, rid: int = 0, client: Any = None) -> Request:
    return Request(client, rid, b"f", "rsa", (args,))


def test_prime_cache_hands_each_answer_out_once() -> None:
    cache = PrimeCache()
    a = _req(b"a")
    cache.add(a)
    cache.add(a)  # the same operation primed twice (the same message twice in an archive)
    assert cache.claim(_req(b"b", client=1)) == (False, None)  # never primed: the caller routes it
    w1, w2, w3 = (_req(b"a", rid, client=1) for rid in (1, 2, 3))
    assert cache.claim(w1) == (True, None)  # still on the card: w1 waits
    assert cache.settle(a, "ok", b"1") == [w1]
    assert cache.settle(a, "ok", b"2") == []  # held
    assert cache.claim(w2) == (True, ("ok", b"2"))
    assert cache.claim(w3) == (False, None)  # both primed answers are spoken for
    assert (cache.primed, cache.hits) == (2, 2)


@pytest.fixture(scope="module")
def old_key() -> Any:
    return generate("Old <old@example.org>", "rsa2048")


def test_parent_primes_workers_collect(old_key: Any) -> None:
    fpr = old_key.encryption_subkey().fingerprint
    unlocked = next(k for k in old_key.secret_keys() if k.public.fingerprint == fpr).unlock(None)
    recipients = message.resolve_recipients([old_key.public()])
    sealed = [message.encrypt(b"message %d" % i, recipients) for i in range(4)]
    parsed = [message.parse_message(m).pkesks[0] for m in sealed]
    want = [message.decrypt_session_key(m, InProcessKeyProvider([old_key])).key for m in sealed]
    with CardBroker([Card("soft", [(unlocked.public, SoftRawDecryptor(unlocked))])]) as broker:
        parent, worker = broker.provider(), broker.provider()
        parent.prime([parsed[0], parsed[1], parsed[0]])  # message 0 twice: primed and done twice
        deadline = time.monotonic() + 30  # two connections: let the broker see the primes first
        while broker.primes.primed < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        worker.prefetch([parsed[0], parsed[1], parsed[2]])  # 2 is not primed: asked of the card
        got = [worker.decrypt_session_key(p).key for p in parsed[:3]]
        got.append(worker.decrypt_session_key(parsed[0]).key)  # the second primed answer of message 0
        got.append(worker.decrypt_session_key(parsed[3]).key)  # neither primed nor prefetched
        ops = broker.metrics()[0].ops
        hits = broker.primes.hits
    assert got == [want[0], want[1], want[2], want[0], want[3]]
    assert (ops, hits) == (5, 3)  # three primed, two asked directly


def test_card_pkesk_skips_what_is_not_ours(old_key: Any) -> None:
    assert card_pkesk(b"From: a@b\n\nplain\n", frozenset({b"x" * 8})) == []


class _Provider:
    """Records what the parent primes (refs are plain items here: no PGP/MIME, so empty groups)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def key_ids(self) -> frozenset[bytes]:
        return frozenset()

    def prime(self, pkesks: list[Any]) -> None:
        self.calls.append(len(pkesks))


class _Source:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def refs(self) -> Any:
        return iter(self.items)


def test_early_priming_starts_before_the_run_and_keeps_every_message() -> None:
    from dataclasses import dataclass

    from engine.mail import cardprime
    from engine.mail.item import MailItem

    @dataclass
    class Keys:
        broker: Any

    @dataclass
    class Crypto:
        keys: Any

    items = [MailItem(i, b"From: a@b\n\nplain %d\n" % i) for i in range(20)]
    provider = _Provider()
    refs = cardprime.card_refs(_Source(items), Crypto(Keys(provider)), early=True)  # type: ignore[arg-type]
    assert len(provider.calls) == 3  # groups of 1, 2, 4 primed before the run takes anything
    assert callable(refs)
    assert [r.index for r in refs(0)] == list(range(20))
    assert len(provider.calls) == 5  # then groups of 8 and 5, as the run takes them
    again = _Provider()
    late = cardprime.card_refs(_Source(items), Crypto(Keys(again)), early=True)  # type: ignore[arg-type]
    assert [r.index for r in late(5)] == list(range(5, 20))  # a later start primes from there on
    plain = cardprime.card_refs(_Source(items), Crypto(Keys(_Provider())))  # type: ignore[arg-type]
    assert callable(plain) and [r.index for r in plain(0)] == list(range(20))
