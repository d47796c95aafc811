"""Prime the card from the parent: while the pool's workers start, and all along the run, the parent
queues on the card broker the private-key operation of every message it hands out, so the card starts
at once and never waits for a worker to read, parse and ask.

The parent reads each message anyway to cut batches (a :class:`~engine.mail.mbox.MboxRef` is loaded here
too; a few kilobytes from the page cache), picks its PKESK as the worker will
(:meth:`engine.mail.crypto.WorkerState.prefetch`) and sends the card step in small groups; the broker
holds each answer until the worker asks for the same operation (:class:`engine.keys.broker_state.PrimeCache`).
The pool reads a bounded number of batches ahead, so the held answers stay bounded too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from engine.mail.classify import MailClass, classify
from engine.mail.crypto import CryptoConfig
from engine.mail.item import MailItem
from engine.mail.mbox import MboxRef
from engine.mail.pgpmime import armored_span
from engine.mail.source import Source
from engine.openpgp import message
from engine.openpgp.pkesk import Pkesk

#: Messages primed per group: one at first (the card starts as soon as the first message is parsed),
#: then doubling up to the largest group.
FIRST_GROUP, MAX_GROUP = 1, 32
#: Messages a fresh run primes before it checks its keys and starts its pool (groups of 1, 2 and 4): the
#: card has work queued for that time (and the first operation is sent after one message is parsed).
EARLY = 7

Ref = MailItem | MboxRef


def card_pkesk(raw: bytes, ids: frozenset[bytes]) -> list[Pkesk]:
    """The PKESK a card key opens in a PGP/MIME message (the first of ours), or none."""
    try:
        if classify(raw) is not MailClass.PGP_MIME:
            return []
        begin, end, _ = armored_span(raw)
        pkesks = message.parse_message(raw[begin:end]).pkesks
    except Exception:  # the worker reports what is wrong with this message
        return []
    return [p for p in pkesks if not p.anonymous and p.key_id in ids][:1]


def primed(refs: Iterable[Ref], provider: Any) -> Iterator[Ref]:
    """``refs`` unchanged, each group's card operations primed on ``provider`` (a
    :class:`~engine.keys.broker_client.BrokeredKeyProvider`) before the group is handed on."""
    ids = provider.key_ids()
    it = iter(refs)
    size = FIRST_GROUP
    while group := list(itertools.islice(it, size)):
        pkesks: list[Pkesk] = []
        for ref in group:
            try:
                raw = ref.raw if isinstance(ref, MailItem) else ref.load().raw
            except Exception:  # the worker meets the same error and reports it
                continue
            pkesks += card_pkesk(raw, ids)
        provider.prime(pkesks)
        yield from group
        size = min(MAX_GROUP, size * 2)


def _primed_from(source: Source, provider: Any, skip: int) -> Iterator[Ref]:
    return primed(itertools.islice(source.refs(), skip, None), provider)


def _started(first: Iterator[Ref], source: Source, provider: Any, skip: int) -> Iterable[Ref]:
    """A fresh run's refs whose first group is primed already; another ``skip`` starts over there."""
    return first if skip == 0 else _primed_from(source, provider, skip)


def card_refs(
    source: Source, crypto: CryptoConfig, *, early: bool = False
) -> Iterable[Ref] | Callable[[int], Iterable[Ref]]:
    """What ``run_journaled`` takes as its source: the refs, primed from item ``skip`` on when a card
    broker serves keys of ``crypto`` (so a resume primes only the messages still to do).

    ``early`` (a fresh run, which starts at item 0): prime the first message now, so the card starts
    before the run checks its keys and starts its pool (the card's first operation overlaps them)."""
    broker = crypto.keys.broker if crypto.keys is not None else None
    if broker is None:
        return source.refs()
    if not early:
        return partial(_primed_from, source, broker)
    refs = _primed_from(source, broker, 0)
    head = list(itertools.islice(refs, EARLY))  # the card starts on the first; more queued behind it
    return partial(_started, itertools.chain(head, refs), source, broker)


__all__ = ["card_pkesk", "card_refs", "primed"]
